"""Red team, webhook delivery settings: a value so large that a delivery's give-up time or next attempt falls
outside the calendar (every offer, or every retry, then fails with OverflowError forever) is refused by the
configuration, naming the setting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pydantic
import pytest

from metrosight.config.webhooks import WebhooksConfig
from metrosight.outbound.delivery import Backoff, lease_for


@pytest.mark.parametrize(
    "setting",
    [
        {"give_up_hours": 1e9},
        {"give_up_hours": float("inf")},
        {"backoff_max_seconds": 1e15},
        {"backoff_initial_seconds": 1e13},
        {"jitter_seconds": 1e15},
        {"keep_days": 10**9},
        {"drain_seconds": float("inf")},
    ],
)
def test_out_of_calendar_settings_are_refused(setting: dict) -> None:
    with pytest.raises(pydantic.ValidationError, match=next(iter(setting))):
        WebhooksConfig.model_validate(setting)


def test_the_largest_accepted_settings_still_schedule_a_delivery() -> None:
    cfg = WebhooksConfig.model_validate(
        {"give_up_hours": 8760, "backoff_initial_seconds": 3600, "backoff_max_seconds": 86400, "jitter_seconds": 3600}
    )
    now = datetime.now(UTC)
    assert now + timedelta(hours=cfg.give_up_hours) + timedelta(seconds=Backoff.of(cfg).seconds(60)) > now
    assert now - timedelta(days=WebhooksConfig(keep_days=3650).keep_days) < now and lease_for(cfg)
