"""Golden bytes of what an upgrade writes: the step markers and the format-2 ``cas-format``.

If one of these fails, what `cas upgrade` leaves in a backend changed: that is a
format change (docs/format.md, Upgrading), not a new literal.
"""

from __future__ import annotations

import json

import blake3
import pytest

from cas.core.format import UPGRADE_DIR, decode_format, encode_format, encode_upgrade_step, upgrade_step_path
from cas.errors import InvalidValueError

FIXED_TIME = "2026-01-01T00:00:00.000000+00:00"
STORE_ID = "0123456789abcdef0123456789abcdef"

MARKER_BYTES = b'{\n  "format": 2,\n  "step": "complete-orphans",\n  "done_at": "2026-01-01T00:00:00.000000+00:00"\n}\n'
MARKER_DIGEST = "c4a3433866a5fceebb9d2753890a40a37a28a97ebc3a7d73b07bb8bafe1b6633"
FORMAT2_BYTES = (
    b'{\n  "format": 2,\n  "hash": "blake3",\n  "store_id": "0123456789abcdef0123456789abcdef",\n'
    b'  "created_at": "2026-01-01T00:00:00.000000+00:00"\n}\n'
)
FORMAT2_DIGEST = "54a95775b2ebebb49cd4e0ff256f725d9d6715944dec23ae3c887a1e5e8a5fa8"


def test_marker_key():
    assert UPGRADE_DIR == "upgrade"
    assert upgrade_step_path(2, "complete-orphans") == "upgrade/2/complete-orphans"


@pytest.mark.parametrize("target,step", [(2, ""), (2, "../x"), (2, "Upper"), (2, "a/b"), (2, "x" * 65), (1, "ok"), (3, "ok")])
def test_marker_keys_come_only_from_the_grammar(target, step):
    with pytest.raises(InvalidValueError):
        upgrade_step_path(target, step)


def test_marker_bytes():
    data = encode_upgrade_step(2, "complete-orphans", FIXED_TIME)
    assert data == MARKER_BYTES
    assert blake3.blake3(data).hexdigest() == MARKER_DIGEST
    assert list(json.loads(data)) == ["format", "step", "done_at"]


def test_format_2_file_bytes_and_digest():
    data = encode_format(STORE_ID, FIXED_TIME, 2)
    assert data == FORMAT2_BYTES
    assert blake3.blake3(data).hexdigest() == FORMAT2_DIGEST
    assert decode_format(data, "file:///store")["format"] == 2
