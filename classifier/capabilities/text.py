"""Capabilities that read the whole comment: recommendations, alerts and trend."""
from __future__ import annotations

from .. import prompts
from .base import TextCapability
from ..outputs import Alerts, Recommendations, Trends

recommendations = TextCapability("recommendations", "recommendations", prompts.RECOMMENDATIONS_TASK, Recommendations)
alerts = TextCapability("alerts", "alerts", prompts.ALERTS_TASK, Alerts)
trend = TextCapability("trend", "trends", prompts.TRENDS_TASK, Trends)
