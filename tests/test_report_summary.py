"""The summary's numbers on a hand-made result set: exact counts."""
from classifier.report import summarize
from tests.report_results import RESULTS
from tests.trees import training


def test_every_count_of_the_summary():
    summary = summarize(RESULTS, training())
    assert (summary.texts, summary.classified, summary.skipped, summary.errors, summary.truncated) == (6, 4, 1, 1, 1)
    assert summary.paths == {
        "Training feedback>Delivery": 3, "Training feedback>Delivery>Pace": 3, "Training feedback>Logistics": 2,
        "Training feedback>Content": 1, "Training feedback>Logistics>Catering": 1, "Training feedback>Logistics>Venue": 1}
    assert summary.stems == {"Delivery>Pace": 3, "Content": 1, "Logistics>Catering": 1, "Logistics>Venue": 1}
    assert summary.polarity == {"Delivery>Pace": {"Positive": 1, "Negative": 2}, "Logistics>Catering": {"Negative": 1},
                                "Logistics>Venue": {"Negative": 1}, "Content": {"Positive": 1}}
    assert summary.alerted == 2 and summary.alerts_by_severity == {"critical": 1, "high": 1, "low": 1}
    assert summary.alerts_by_type == {"safety_concern": 2, "other_serious_concern": 1}
    assert summary.recommendations_by_qualifier == {"reduce_or_remove": 1}
    assert summary.stem_recommendations == {"Delivery>Pace": {"do_less": ["Less rushing"]}}
    assert summary.trends_by_direction == {"deteriorating": 1, "improving": 1}
    assert summary.trends_by_subject == {"lunch": 2}, "subjects are counted case- and space-insensitively"
    assert summary.confidence == {"3": 4, "4": 4, "5": 3}  # every accepted node, parents included
    assert list(summary.as_dict()) [:3] == ["texts", "classified", "skipped"]


def test_an_empty_set_summarizes_to_zeros():
    summary = summarize([], training())
    assert summary.texts == 0 and summary.paths == {} and summary.polarity == {}
