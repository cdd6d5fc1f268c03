"""Every setting of the service, read once at the composition root and handed down.

Nothing below this module reads the environment or the command line: the faces
(`classifier_server.py`, `batch_classify.py`) build one `Settings` and pass it on.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

if TYPE_CHECKING:
    from .calibration import Calibration, FlagCalibration

DEFAULT_CACHE_DIR = Path.home() / ".cache" / "classifier"
CACHE_DIR_ENV = "CLASSIFIER_CACHE_DIR"  # --cache-dir's environment twin, read by the install commands too


@dataclass(frozen=True)
class EngineSettings:
    """How the LLM backend is built (see `classifier.llm.pool`)."""

    backend: str = "local"  # "local" | "vllm-server"
    llm: str | None = None  # model name or folder; None = the embedded default on CPU
    gpu_list: tuple[int, ...] = ()  # empty = no GPU: one engine on vLLM's CPU build
    # What the process may see, as CUDA_VISIBLE_DEVICES lists it (ids, or UUIDs); gpu_list
    # indexes this, in CUDA's order. None: the operator set nothing, every GPU is visible.
    visible_devices: tuple[str, ...] | None = None
    gpu_memory: float = 0.9  # fraction of each GPU's memory vLLM may use
    max_length: int = 4096  # context window in tokens (prompt + output)
    server_urls: tuple[str, ...] = ("http://127.0.0.1:8000/v1",)
    server_api_key: str | None = None  # for servers started with --api-key; None sends a dummy key
    max_concurrent: int = 32  # in-flight requests to servers, all URLs together
    # Prompts one local engine runs at once (its batch); more wait for a place, handed round
    # robin between requesters (`llm.fairness`). See docs/benchmarks.md for how it was chosen.
    max_running: int = 64
    request_timeout: float = 120.0  # seconds for one request to a server
    retry_deadline: float = 60.0  # seconds an item is retried against servers before it fails
    temperature: float = 0.0
    seed: int = 42
    kv_cache_gib: float = 1.0  # KV cache size on the CPU engine
    block_size: int | None = 32  # KV block size; 32 lets the prefix cache share more on CPU
    enforce_eager: bool | None = None  # None: eager on CPU (faster start, same speed), CUDA graphs on GPU
    cache_dir: Path = DEFAULT_CACHE_DIR  # converted default model lives here
    # The fallback chain (`llm.chain`): servers used while the primary backend cannot answer,
    # then a local engine (CPU without a GPU), started beside it and standing by.
    fallback_server_urls: tuple[str, ...] = ()
    fallback_local: bool = False
    fallback_llm: str | None = None  # the fallbacks' model; None: the server's only one, the embedded default


@dataclass(frozen=True)
class ClassifierSettings:
    """How the taxonomy is walked and which answers are accepted."""

    strategy: str = "select"  # "select" | "per_node" | "score" | "flat"
    max_paths: int = 3  # most children one node may pass on (select)
    min_confidence: int = 3  # per_node: lowest confidence (1-5) accepted
    # Lowest (calibrated) probability a node needs to be accepted; 0.4 did best for select's
    # raw probabilities on the tune half of the restaurant sample (docs/eval-results.md, section 7).
    min_probability: float = 0.4
    calibration: Calibration | None = None  # per-level maps of the model's probabilities (select, score, flat)
    # Per capability that decides before detailing (alerts, recommendations, trend and the stem
    # ones): the map of its words' probability and its threshold (`capabilities.flags`).
    flags: Mapping[str, FlagCalibration] = field(default_factory=dict)
    require_excerpt: bool = False  # per_node: accept only answers quoting the comment
    max_stem_definitions: int = 0  # stems: how many path nodes' definitions go in (0 = all)
    # stem_polarity: one call per stem with a reasoning and an excerpt (the prototype's
    # way). Off: one call per text judges all its stems, polarity only, a few tokens each.
    stem_reasoning: bool = False
    # select: ask for a short reason after the topics. Off: it is generated after the
    # pick, so it cannot improve it; on the CPU engine it lost 1.5-4% of texts to
    # rambling (invalid JSON) and cost 28% of throughput (docs/eval-results.md).
    reasoning: bool = False
    few_shot: bool = False  # select: show example answers built from the children's keywords
    batch_size: int = 256  # most prompts sent in one processor call
    # Where the taxonomy has gold (labelled comments, `classifier.gold`), the select walk reads it:
    # how many of the nearest labelled comments each LLM question shows as examples, and who
    # decides a node: "cascade" (the learned classifier where it is sure, the LLM elsewhere; best
    # level-1 F1 on the tune half, docs/eval-results.md section 10), "learned" (the learned
    # classifier alone, no LLM call) or "llm" (the LLM, with the examples).
    examples: int = 8
    route: str = "cascade"


@dataclass(frozen=True)
class DistillSettings:
    """The distilled route (`classifier.distill`): how much of a file the LLM answers to teach
    the learned models, and which of its answers teach."""

    sample: float = 0.0  # comments the LLM answers: a number (>= 1), a share (< 1), or 0: 5%, at least 200
    floor: int = 5  # per node and flag: comments drawn near it where the sample shows it fewer times
    min_comments: int = 400  # a file with fewer is answered by the LLM alone (too little to learn from)
    labels: str = "all"  # which answers teach: all, or sure (those the LLM gave with a high probability)
    # Past the sample: the share of comments the learned models doubt most (`distill.doubt`), answered
    # through the cascade (the LLM asked about what they are unsure of); the others they answer alone.
    escalate: float = 0.15
    seed: int = 42


@dataclass(frozen=True)
class ServerSettings:
    """How the HTTP face listens, what it accepts, and how long requests wait to share a pass."""

    host: str = "127.0.0.1"
    port: int = 8000
    batch_timeout: float = 0.01  # seconds a request waits for others to share its classification pass
    max_texts: int = 1000  # texts per request
    max_text_chars: int = 10_000  # characters per text
    max_queued_texts: int = 20_000  # texts admitted and not yet answered; past it: 503
    max_body_bytes: int = 16 << 20  # one request body (not an upload); past it: 413
    max_upload_bytes: int = 1 << 30  # one uploaded file (POST /v1/files); past it: 413
    max_bodies_in_flight_bytes: int = 256 << 20  # request bodies being received, all together; past it: 503
    api_keys: tuple[str, ...] = ()  # when set, every route but /health and /ready needs `Authorization: Bearer KEY`
    max_connections: int = 512  # concurrent connections and requests; past it uvicorn answers 503
    drain_timeout: float = 120.0  # seconds SIGTERM waits for work in flight before failing what is left
    rate_limits: tuple[str, ...] = ()  # per API key and route family, "classify=600/minute" (`api.rate_limits`)
    # Ask every fixed prompt once at start, in the background, so the first comment finds them in
    # the prefix cache (`classifier.warmup`). None: for the local backend only (a server may be
    # shared and warm already; ask it with True).
    warm_up: bool | None = None


@dataclass(frozen=True)
class JobSettings:
    """Classification jobs (the OpenAI-Batch-shaped API): where they live and how they run."""

    enabled: bool = True  # work jobs in this process (--no-jobs: serve HTTP only)
    data_dir: Path = Path("data")  # uploaded and output files; the SQLite database by default
    database_url: str | None = None  # postgresql://... to share one queue between processes
    chunk_size: int = 64  # lines per chunk: the unit of work, commit and redo after a crash
    lease_seconds: float = 300.0  # a claimed chunk returns to the queue if its worker is silent this long
    poll_seconds: float = 0.5  # how often an idle worker looks for work
    webhook_secret: str | None = None  # Standard Webhooks signing key (whsec_... or raw)
    webhook_allow: tuple[str, ...] = ()  # hosts a webhook may call; none by default
    webhook_attempts: int = 5
    webhook_backoff: float = 2.0  # seconds before the second attempt, doubling after
    max_queued_lines: int = 1_000_000  # per API key: lines waiting in its batches; past it 429
    retention_days: float = 30.0  # ended batches and old files are deleted after this long
    retrain_after: int = 20  # gold labels added, changed or deleted before the learned classifier is retrained
    retrain_interval: float = 60.0  # seconds at least between two retrainings of one owner's labels
    max_labels: int = 100_000  # labels one API key may hold per taxonomy; past it 409
    distill: DistillSettings = DistillSettings()  # a distilled job's, unless its metadata says otherwise

    @property
    def url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'jobs.db').resolve()}"


@dataclass(frozen=True)
class Settings:
    engine: EngineSettings = field(default_factory=EngineSettings)
    classifier: ClassifierSettings = field(default_factory=ClassifierSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    jobs: JobSettings | None = None  # None: no jobs API (library use, tests of the HTTP face)
