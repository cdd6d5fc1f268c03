"""The model engine tests run: the small embedded one, fast on CPU. These tests check the
plumbing (shapes, order, bounds, failures), not the answers, so its reading does not matter."""
from classifier.llm.embedded import SMOLLM2_135M

TEST_LLM = SMOLLM2_135M.name
