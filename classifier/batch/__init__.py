"""The batch face: read comments from a CSV, classify them chunk by chunk into a journal
that survives a crash, and render the output from it (`batch_classify.py`)."""
