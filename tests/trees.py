"""Small taxonomies for unit tests."""
from classifier.taxonomy import Taxonomy, taxonomy_from_dict

TRAINING = {
    "name": "Training feedback",
    "children": [
        {
            "name": "Delivery",
            "description": "How the training was delivered",
            "definition": "The trainer's way of presenting",
            "keywords": ["trainer", "presenting"],
            "children": [
                {"name": "Pace", "definition": "Speed at which material was covered", "keywords": ["rushed", "slow"]},
                {"name": "Clarity", "definition": "How understandable the explanations were"},
            ],
        },
        {
            "name": "Logistics",
            "description": "Venue, food and schedule",
            "children": [
                {"name": "Catering", "definition": "Food and drinks served", "scope": "Not the venue itself"},
                {"name": "Venue", "definition": "The room and building"},
            ],
        },
        {"name": "Content", "definition": "What was taught"},
    ],
}


def training() -> Taxonomy:
    return taxonomy_from_dict(TRAINING, name="topics")
