"""LLM text classification into a customer's taxonomy, under JSON schemas."""
