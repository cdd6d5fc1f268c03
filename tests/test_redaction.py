"""Credentials in a server URL are never shown: not in /health or /ready, not in errors, not
at start."""
from __future__ import annotations

import pytest

from classifier.cli import describe
from classifier.llm.errors import ProcessorError
from classifier.llm.server import VLLMServerProcessor, redacted
from classifier.settings import EngineSettings, Settings

SECRET_URL = "http://user:s3cret@127.0.0.1:9/v1"


def test_a_url_loses_its_user_and_password_and_nothing_else():
    assert redacted(SECRET_URL) == "http://***@127.0.0.1:9/v1"
    assert redacted("https://token@host.example/v1?x=1") == "https://***@host.example/v1?x=1"
    assert redacted("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000/v1"


async def test_errors_and_the_start_line_name_the_server_without_its_credentials():
    engine = EngineSettings(backend="vllm-server", server_urls=(SECRET_URL,), request_timeout=1.0)
    processor = VLLMServerProcessor(engine)
    with pytest.raises(ProcessorError) as caught:
        await processor.start()
    await processor.close()
    assert "cannot reach the server at http://***@127.0.0.1:9/v1" in str(caught.value)
    assert "s3cret" not in str(caught.value) and "s3cret" not in describe(Settings(engine=engine), "m")
