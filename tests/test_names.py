"""Names are data, never paths (DESIGN invariant 8): the grammar, exhaustively."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cas.core.names import (
    LATEST,
    MAX_VERSION,
    ArtifactName,
    check_alias,
    check_segment,
    parse_name,
    parse_ref,
    parse_version,
)
from cas.errors import InvalidNameError

SEGMENT_START = string.ascii_letters + string.digits
SEGMENT_REST = SEGMENT_START + "._-"

segments = st.builds(
    lambda first, rest: first + rest,
    st.sampled_from(SEGMENT_START),
    st.text(alphabet=SEGMENT_REST, max_size=127),
)
names = st.builds(lambda p, s, a: f"{p}/{s}/{a}", segments, segments, segments)
aliases = st.builds(
    lambda first, rest: first + rest,
    st.sampled_from(string.ascii_letters),
    st.text(alphabet=SEGMENT_REST, max_size=127),
).filter(lambda a: a != LATEST)

GOOD_NAMES = [
    "p/s/a",
    "churn/train/model",
    "Churn-2024/step_1/model.pkl",
    "0/1/2",
    "a/b/" + "x" * 128,
    "a.b/c..d/e-",
]

BAD_NAMES = [
    "",
    "p",
    "p/s",
    "p/s/a/b",
    "/p/s/a",
    "p/s/a/",
    "p//a",
    "../s/a",
    "p/../a",
    "p/s/..",
    "./s/a",
    ".hidden/s/a",
    "_p/s/a",
    "-p/s/a",
    "p\\s/a",
    "p/s\\a/b",
    "C:/s/a",
    "p/s/a\x00",
    "p/s/\x00a",
    "p/s/a\n",
    "p/s/a\r",
    "p/s/a\t",
    "p/s/\x1b[31m",
    "p/s/a\x7f",
    "p/s/a b",
    "p/s/" + "x" * 129,
    "p/s/é",
    "p/s/ａ",  # fullwidth letter
    "p/s/a@1",
    "p/s/a:b",
    "p/s/a*",
    "~/s/a",
]


class TestNames:
    @pytest.mark.parametrize("name", GOOD_NAMES)
    def test_valid_names_parse_and_print_back(self, name):
        parsed = parse_name(name)
        assert str(parsed) == name
        assert parsed.parts == tuple(name.split("/"))
        assert parse_name(parsed) is parsed

    @pytest.mark.parametrize("name", BAD_NAMES)
    def test_invalid_names_are_refused(self, name):
        with pytest.raises(InvalidNameError):
            parse_name(name)

    @pytest.mark.parametrize("value", [None, 1, b"p/s/a", ["p", "s", "a"]])
    def test_non_strings_are_refused(self, value):
        with pytest.raises(InvalidNameError, match="must be a string"):
            parse_name(value)

    def test_message_shows_control_characters_visibly(self):
        with pytest.raises(InvalidNameError) as info:
            parse_name("p/s/a\x00\n")
        text = str(info.value)
        assert "\\x00" in text and "\\n" in text
        assert "\x00" not in text and "\n" not in text  # one printable line

    def test_segment_length_limit_is_128(self):
        assert check_segment("a" * 128) == "a" * 128
        with pytest.raises(InvalidNameError):
            check_segment("a" * 129)

    def test_invalid_name_error_is_a_value_error(self):
        with pytest.raises(ValueError):
            parse_name("../x/y")

    def test_artifact_name_is_an_ordered_value(self):
        assert ArtifactName("a", "b", "c") < ArtifactName("a", "b", "d")
        assert {ArtifactName("a", "b", "c"), parse_name("a/b/c")} == {ArtifactName("a", "b", "c")}

    @settings(max_examples=200)
    @given(names)
    def test_generated_valid_names_round_trip(self, name):
        assert str(parse_name(name)) == name

    @settings(max_examples=300)
    @given(st.text(max_size=60))
    def test_any_text_is_either_a_clean_name_or_refused(self, text):
        """Whatever arrives, the answer is a name that is safe as a path, or InvalidNameError."""
        try:
            parsed = parse_name(text)
        except InvalidNameError:
            return
        assert str(parsed) == text
        for part in parsed.parts:
            assert part not in (".", "..")
            assert part[0] in SEGMENT_START
            assert set(part) <= set(SEGMENT_REST)


class TestVersions:
    @pytest.mark.parametrize(
        "given_,expected",
        [(None, LATEST), ("latest", LATEST), (1, 1), ("1", 1), ("0042", 42), (MAX_VERSION, MAX_VERSION), ("prod", "prod")],
    )
    def test_valid(self, given_, expected):
        assert parse_version(given_) == expected

    @pytest.mark.parametrize(
        "bad",
        [0, -1, "0", "-1", MAX_VERSION + 1, str(MAX_VERSION + 1), "1.5", 1.0, True, False, "", " 1", "1 ", "٣",
         "latest\x00", "a/b", "..", "1e3", "v\n", b"1", "x" * 129],
    )
    def test_invalid(self, bad):
        with pytest.raises(InvalidNameError):
            parse_version(bad)


class TestAliases:
    @pytest.mark.parametrize("alias", ["production", "staging", "v1", "A", "a.b-c_d", "x" * 128])
    def test_valid(self, alias):
        assert check_alias(alias) == alias

    @pytest.mark.parametrize("bad", ["latest", "", "1", "1abc", "_x", ".x", "a/b", "a b", "a\x00", "é", "x" * 129, None, 3])
    def test_invalid(self, bad):
        with pytest.raises(InvalidNameError):
            check_alias(bad)

    @given(aliases)
    def test_generated_aliases_are_accepted_and_are_versions(self, alias):
        assert check_alias(alias) == alias
        # an alias never reads as a version number
        assert parse_version(alias) == alias


class TestRefs:
    @pytest.mark.parametrize(
        "ref,version,expected",
        [
            ("p/s/a", None, (ArtifactName("p", "s", "a"), LATEST)),
            ("p/s/a@3", None, (ArtifactName("p", "s", "a"), 3)),
            ("p/s/a@latest", None, (ArtifactName("p", "s", "a"), LATEST)),
            ("p/s/a@prod", None, (ArtifactName("p", "s", "a"), "prod")),
            ("p/s/a", 7, (ArtifactName("p", "s", "a"), 7)),
            ("p/s/a", "prod", (ArtifactName("p", "s", "a"), "prod")),
        ],
    )
    def test_valid(self, ref, version, expected):
        assert parse_ref(ref, version) == expected

    @pytest.mark.parametrize("ref", ["p/s/a@", "p/s/a@0", "p/s/a@1@2", "@1", "p/s@1", "../s/a@1", "p/s/a@-1", "p/s/a@../x"])
    def test_invalid(self, ref):
        with pytest.raises(InvalidNameError):
            parse_ref(ref)

    def test_version_given_twice_is_refused(self):
        with pytest.raises(InvalidNameError, match="also given"):
            parse_ref("p/s/a@1", 2)

    @given(names, st.integers(min_value=1, max_value=MAX_VERSION) | aliases)
    def test_name_at_version_round_trips(self, name, version):
        parsed, spec = parse_ref(f"{name}@{version}")
        assert str(parsed) == name
        assert spec == version
