"""What people read: the summary of a set of results, the HTML report and the spreadsheet.

All three are built from results in the wire shape of `POST /classify`, so a CSV run, a
/classify request and (later) a job share one code path.
"""
from .summary import Summary, summarize

__all__ = ["Summary", "summarize"]
