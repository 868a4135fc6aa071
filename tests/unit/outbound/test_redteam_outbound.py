"""Red team, outbound seam: what a subscription's filter lets through, and what a shown URL still gives away."""

from __future__ import annotations

import pytest

from metrosight.bus.payloads import AlertUpdateV1, AlertV1
from metrosight.core.names import InvalidInput
from metrosight.outbound.channel import EventFilter
from metrosight.outbound.events import to_outbound
from metrosight.store.webhooks import check_url, shown_url


@pytest.mark.parametrize(
    "flt",
    [EventFilter.of(watchlists=["staff-only"]), EventFilter.of(categories=["vip"])],
)
def test_a_list_filtered_subscription_gets_no_track_end_of_another_lists_alert(flt: EventFilter) -> None:
    # the end of an alert's track names no list; a subscription that asked for one list's alerts must not learn
    # when and on which camera (the event id carries it) other lists' people were seen
    ended = to_outbound("alert-updates", AlertUpdateV1(event_id="cam-7:9eeb:12.0", last_seen=20.0), {}, now=1.0)
    assert not flt.accepts(ended)
    assert EventFilter.of(types=["alert"]).accepts(ended)  # unfiltered by list: still delivered


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        # Telegram's bot API: the bot token (id:key) is a path segment
        ("https://api.telegram.org/bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/sendMessage", "AAHdqTcvCH1vGWJ"),
        # a Slack-style key that happens to have no digit (1 in 70 random 24-letter keys)
        ("https://hooks.slack.com/services/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", "qXwTkLmNoPrStUvWxYzAbCdE"),
    ],
)
def test_chat_service_keys_in_the_path_are_never_shown(url: str, secret: str) -> None:
    shown = shown_url(url)
    assert secret not in shown
    assert shown.startswith("https://") and "***" in shown


def test_ordinary_path_words_stay_readable() -> None:
    assert shown_url("https://vms.metro.local/hooks/metrosight/IncomingWebhook") == (
        "https://vms.metro.local/hooks/metrosight/IncomingWebhook"
    )


@pytest.mark.parametrize("url", ["http://[::1:S3cr3tPass]/x", "https://h:S3cr3t@[zz:S3cr3t]/in"])
def test_a_malformed_bracketed_host_is_one_clear_refusal_that_never_echoes_it(url: str) -> None:
    assert "S3cr3t" not in shown_url(url)  # never raises
    with pytest.raises(InvalidInput, match="cannot be parsed") as err:
        check_url(url)
    assert "S3cr3t" not in str(err.value)


def test_filters_name_lists_and_groups_as_the_rest_of_metrosight_does() -> None:
    # a watchlist or camera group typed in another case or Unicode form is the same one everywhere else (scopes,
    # alert policies, --camera); a subscription typed so must not silently receive none of its alerts
    ev = to_outbound("alerts", alert_on("hall-a", "wanted-2026"), {}, now=1.0)
    for flt in (
        EventFilter.of(watchlists=["Wanted-2026"]),
        EventFilter.of(camera_groups=["Hall-A"]),
        EventFilter.of(camera_groups=["hall-а"]),  # Cyrillic а, as `user scope` and `watchlist policy` accept
        EventFilter.of(categories=["Wanted"]),
    ):
        assert flt.accepts(ev), flt
    for flt in (EventFilter.of(watchlists=["wanted-2025"]), EventFilter.of(camera_groups=["hall-b"])):
        assert not flt.accepts(ev), flt


def alert_on(group: str, watchlist: str) -> AlertV1:
    return AlertV1(
        event_id="cam-1:t:1.0",
        camera_id="cam-1",
        track_id=1,
        subject_id=1,
        subject="X",
        watchlist=watchlist,
        category="wanted",
        score=0.9,
        distance=0.1,
        first_seen=1.0,
        last_seen=2.0,
        samples=3,
        group=group,
    )


@pytest.mark.parametrize("url", ["hook:S3cr3tPass@receiver.example/in", "//hook:S3cr3tPass@receiver.example/in"])
def test_a_url_without_its_scheme_is_refused_without_echoing_its_password(url: str) -> None:
    with pytest.raises(InvalidInput, match="http:// or https://") as err:
        check_url(url)
    assert "S3cr3t" not in str(err.value) and "receiver.example" in str(err.value)
    assert "S3cr3t" not in shown_url(url)
