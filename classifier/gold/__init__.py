"""Learning from the customer's labels (gold): labelled comments stored per taxonomy, their
embeddings, the nearest of them shown to the LLM as examples, and a classifier learned from
them that decides the nodes it is sure of (`knowledge`). `python -m classifier.gold` imports,
lists, trains and exports."""

# Who decides a node of the select walk where the taxonomy has gold.
ROUTES = ("llm", "learned", "cascade")
OPERATOR = "cli"  # the owner of labels imported with `python -m classifier.gold`: every key reads them
