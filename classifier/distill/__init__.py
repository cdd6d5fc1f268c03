"""The distilled route: the LLM teaches on a sample of a file, models learned from its answers
answer the rest, and the LLM answers only where they are unsure.

A file's comments are embedded once. A sample drawn to cover them (`sample`) is answered by
whatever backend serves, as the LLM route answers every comment; nodes and flags the sample
shows too rarely get more comments drawn near them (a floor per node). The answers become
labels of their own kind, "silver" (`silver`): they train the topics' learned classifier, the
polarity model and each flag's, exactly as the customer's gold does, but live only for the
run, never in the gold store. The rest of the file then goes through the cascade (`route`):
the learned models decide what they are sure of, the LLM the rest, and writes every detail.
"""

DISTILLED = "distilled"  # the route's name, as `--route` and a job's `metadata.route` give it
