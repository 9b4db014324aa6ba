"""Addresses as delivery checks them: emails (RFC 5321 lengths, dot-atom, IDNA domains), phone
numbers (E.164 with a country code, assigned ranges), and each channel's address kind. Tables,
no I/O."""

from __future__ import annotations

import pytest

from legato.domain.delivery import normalize_email, normalize_phone, validate_address
from legato.errors import InvalidInput


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("ann@example.com", "ann@example.com"),
        ("Ann.Lee+promo@Sub.Example.co.uk", "Ann.Lee+promo@sub.example.co.uk"),
        ("o'brien@example.ie", "o'brien@example.ie"),
        ("user@bücher.example", "user@xn--bcher-kva.example"),
        ("root@example.com.", "root@example.com"),
    ],
)
def test_valid_emails(raw: str, normalised: str) -> None:
    assert normalize_email(raw) == normalised


@pytest.mark.parametrize(
    "raw",
    [
        "plainaddress", "@example.com", "ann@", "ann@localhost", "ann..lee@example.com",
        ".ann@example.com", "ann lee@example.com", "ann@exa_mple.com", "ann@-example.com",
        "ann@192.168.0.1", "a" * 65 + "@example.com", "ann@" + "a" * 250 + ".com",
        "ann@example.com\r\nBcc: x@y.z",
    ],
)  # fmt: skip
def test_invalid_emails(raw: str) -> None:
    with pytest.raises(InvalidInput):
        normalize_email(raw)


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("+14155552671", "+14155552671"),
        ("+44 7911 123456", "+447911123456"),
        ("0033 6 12 34 56 78", "+33612345678"),
        ("+1 (202) 555-0143", "+12025550143"),
    ],
)
def test_valid_phones(raw: str, normalised: str) -> None:
    assert normalize_phone(raw) == normalised


@pytest.mark.parametrize(
    "raw",
    ["4155552671", "+1555", "+15555550100", "+0123456789", "tel:+14155552671", "+1415555267a"],
)
def test_invalid_phones(raw: str) -> None:
    with pytest.raises(InvalidInput):
        normalize_phone(raw)


@pytest.mark.parametrize(
    ("channel", "address", "ok"),
    [
        (
            "webpush",
            '{"endpoint": "https://push.example/x", "keys": {"p256dh": "a", "auth": "b"}}',
            True,
        ),
        ("webpush", '{"endpoint": "https://push.example/x"}', False),
        ("webpush", "not json", False),
        ("webhook", "https://hooks.example/x", True),
        ("webhook", "javascript:alert(1)", False),
        ("push", "fcm-token", True),
        ("carrier-pigeon", "loft 7", True),
    ],
)
def test_channel_address_kinds(channel: str, address: str, ok: bool) -> None:
    if ok:
        assert validate_address(channel, address)
    else:
        with pytest.raises(InvalidInput):
            validate_address(channel, address)
