"""Evaluation: gold loaders for the labelled data, metrics, and the harness command."""
