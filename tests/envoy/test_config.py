"""The YAML configuration: envoyproxy/ratelimit's config tests (test/config/config_test.go) ported,
the lookups and the statistics names they check, and every refused file naming its file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from coord_server.envoy.loading import EnvoyConfigError, EnvoyLimits, load, parse
from coord_server.envoy.model import Algorithm, Config, Match, Mode, Unit

from . import configs
from .examples import EXAMPLES
from .helpers import write


def config_of(text: str, name: str = "config.yaml") -> tuple[Config, str]:
    domain, tree, _ = parse(text, name)
    return Config({domain: tree}), domain


def lookup(text: str, *entries: tuple[str, str]) -> Match | None:
    config, domain = config_of(text)
    return config.lookup(config.domains[domain], entries)


def limit_of(match: Match | None) -> tuple[int, Unit | None, str, str]:
    assert match is not None
    rule = match.rule
    return rule.requests_per_unit, rule.unit, rule.name, match.stat_key


BASIC = configs.BASIC_CONFIG


def test_basic_config_lookups() -> None:
    """TestBasicConfig: which descriptors get which limit, and the statistics key of each."""
    config, domain = config_of(BASIC)
    assert domain == "test-domain" and "foo_domain" not in config.domains
    assert lookup(BASIC) is None  # no entries
    assert lookup(BASIC, ("key1", "something")) is None
    assert lookup(BASIC, ("key1", "value1")) is None  # a level with no rule of its own
    assert lookup(BASIC, ("key2", "value2"), ("subkey", "subvalue")) is None  # deeper than the rule
    assert lookup(BASIC, ("key5", "value5"), ("subkey5", "subvalue")) is None
    assert limit_of(lookup(BASIC, ("key1", "value1"), ("subkey1", "something"))) == (
        5, Unit.SECOND, "", "key1_value1.subkey1",
    )  # fmt: skip
    assert limit_of(lookup(BASIC, ("key1", "value1"), ("subkey1", "subvalue1"))) == (
        10, Unit.SECOND, "", "key1_value1.subkey1_subvalue1",
    )  # fmt: skip
    assert limit_of(lookup(BASIC, ("key2", "something"))) == (20, Unit.MINUTE, "", "key2")
    assert limit_of(lookup(BASIC, ("key2", "value2"))) == (30, Unit.MINUTE, "", "key2_value2")
    assert lookup(BASIC, ("key2", "value3")) is None  # listed without a limit: let through
    assert limit_of(lookup(BASIC, ("key3", "foo"))) == (1, Unit.HOUR, "", "key3")
    assert limit_of(lookup(BASIC, ("key4", "foo"))) == (1, Unit.DAY, "key4_rate_limit", "key4")
    assert limit_of(lookup(BASIC, ("key5", "value5"))) == (15, Unit.DAY, "", "key5_value5")
    assert limit_of(lookup(BASIC, ("key5", "value5"), ("subkey5", "subvalue5"))) == (
        25, Unit.DAY, "", "key5_value5.subkey5_subvalue5",
    )  # fmt: skip
    unlimited = lookup(BASIC, ("key6", "foo"))
    assert unlimited is not None and unlimited.rule.unlimited
    # detailed_metric: one statistics key per value
    assert limit_of(lookup(BASIC, ("key7", "unspecified_value"))) == (
        70, Unit.MINUTE, "", "key7_unspecified_value",
    )  # fmt: skip
    assert lookup(BASIC, ("key7", "another_value")).stat_key == "key7_another_value"  # type: ignore[union-attr]


def test_every_rule_is_a_fixed_window_unless_it_says_otherwise() -> None:
    match = lookup(BASIC, ("key2", "x"))
    assert match is not None and match.rule.algorithm is Algorithm.FIXED_WINDOW
    assert match.rule.mode is Mode.ENFORCED


def test_shadow_mode_config() -> None:
    """TestShadowModeConfig."""
    text = configs.SHADOWMODE_CONFIG
    plain = lookup(text, ("key1", "value1"), ("subkey1", "something"))
    assert plain is not None and not plain.rule.shadow_mode and plain.rule.requests_per_unit == 5
    shadow = lookup(text, ("key1", "value1"), ("subkey1", "subvalue1"))
    assert shadow is not None and shadow.rule.shadow_mode and shadow.rule.mode is Mode.SHADOW
    assert shadow.rule.requests_per_unit == 10
    assert lookup(text, ("key2", "something")).rule.shadow_mode  # type: ignore[union-attr]
    assert not lookup(text, ("key2", "value2")).rule.shadow_mode  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("entries", "stat_key"),
    [
        ((("noVal", "foo1"),), "noVal"),
        ((("noVal", "foo2"),), "noVal"),
        ((("wild", "foo1"),), "wild_foo*"),
        ((("wild", "foo2"),), "wild_foo*"),
        ((("nestedWild", "val1"), ("wild", "goo2")), "nestedWild_val1.wild_goo*"),
        ((("midWild", "barab"),), "midWild_bar*b"),
        ((("midWild", "bar123b"),), "midWild_bar*b"),
        ((("midWild", "barb"),), "midWild_bar*b"),  # '*' matches the empty string
        ((("multiWild", "foo123bar456baz"),), "multiWild_foo*bar*baz"),
        ((("multiWild", "foobarbaz"),), "multiWild_foo*bar*baz"),
    ],
)
def test_wildcards_match(entries: tuple[tuple[str, str], ...], stat_key: str) -> None:
    """TestWildcardConfig: what matches a wildcard value, and every match shares its rule's name."""
    match = lookup(configs.WILDCARD, *entries)
    assert match is not None and match.stat_key == stat_key
    # Without share_threshold every value keeps its own counter.
    assert match.counter == entries


@pytest.mark.parametrize(
    "entries",
    [
        (("wild", "bar"),),
        (("noWild", "foo1"),),  # no eager prefix match of a plain value
        (("midWild", "bara"),),  # no suffix
        (("midWild", "xbarb"),),  # no prefix
        (("multiWild", "foo123baz"),),  # a middle segment missing
        (("multiWild", "bar456baz"),),  # the prefix missing
    ],
)
def test_wildcards_do_not_match(entries: tuple[tuple[str, str], ...]) -> None:
    assert lookup(configs.WILDCARD, *entries) is None


def test_share_threshold_keys_every_match_under_the_pattern() -> None:
    """TestShareThreshold: one counter (and one statistics key) for every value a pattern matches."""
    text = configs.SHARE_THRESHOLD
    for value in ("files/a.pdf", "files/b.csv", "files/c.txt"):
        match = lookup(text, ("files", value))
        assert match is not None and match.rule.requests_per_unit == 100
        assert match.counter == (("files", "files/*"),)
        assert match.stat_key == "files_files/*"
    routed = lookup(text, ("route", "api/v1"), ("method", "GET"))
    assert routed is not None and routed.stat_key == "route_api/*.method"  # share wins over value_to_metric
    assert routed.counter == (("route", "api/*"), ("method", "GET"))
    detailed = lookup(text, ("service", "svc/user"), ("endpoint", "get"))
    assert detailed is not None and detailed.stat_key == "service_svc/*.endpoint_get"
    nested = lookup(text, ("nested", "parent"), ("files", "nested/file1.txt"))
    assert nested is not None and nested.rule.requests_per_unit == 200
    assert nested.stat_key == "nested_parent.files_nested/*"
    both = lookup(text, ("files", "top/file1.txt"), ("files", "nested/file1.txt"))
    assert both is not None and both.rule.requests_per_unit == 300
    assert both.counter == (("files", "top/*"), ("files", "nested/*"))
    mixed = lookup(text, ("path", "path/foo"), ("file", "file/doc1"), ("type", "pdf"))
    assert mixed is not None and mixed.stat_key == "path_path/*.file_file/*.type"
    assert mixed.counter == (("path", "path/*"), ("file", "file/doc1"), ("type", "pdf"))
    assert lookup(text, ("user", "user/alice"), ("resource", "res/file1"), ("action", "read")).stat_key == (  # type: ignore[union-attr]
        "user_user/*.resource_res/*.action"
    )
    explicit = lookup(text, ("file", "test1"))  # an exact value wins over a wildcard
    assert explicit is not None and explicit.rule.requests_per_unit == 50
    assert explicit.counter == (("file", "test1"),) and explicit.stat_key == "file_test1"
    for value in ("test2", "test23", "test123"):
        assert lookup(text, ("file", value)).counter == (("file", "test*"),)  # type: ignore[union-attr]
    assert lookup(text, ("tenant", "t1prod"), ("resource", "res1v2")).counter == (  # type: ignore[union-attr]
        ("tenant", "t*prod"), ("resource", "res*v2"),
    )  # fmt: skip


def test_value_to_metric_names_statistics_by_value() -> None:
    """README examples 10 and 11 (as the reference's tests check them)."""
    assert lookup(
        EXAMPLES["example10"], ("route", "api"), ("http_method", "GET"), ("subject_id", "123")
    ).stat_key == (  # type: ignore[union-attr]
        "route_api.http_method_GET.subject_id"
    )
    assert (
        lookup(
            EXAMPLES["example10_wildcard"],
            ("user", "alice"),
            ("action", "readfile"),
            ("resource", "documents"),
        ).stat_key
        == "user_alice.action_readfile.resource"
    )  # type: ignore[union-attr]
    assert lookup(EXAMPLES["example11_metrics"], ("route", "api/v1"), ("method", "GET")).stat_key == (  # type: ignore[union-attr]
        "route_api/*.method"
    )


def test_every_readme_example_loads_from_one_folder(tmp_path: Path) -> None:
    folder = write(tmp_path / "conf", {f"{name}.yml": text for name, text in EXAMPLES.items()})
    (folder / "notes.txt").write_text("not a config")  # other files are not read
    (folder / ".hidden.yaml").write_text("domain: [")  # nor hidden ones (a ConfigMap's ..data)
    (folder / "sub").mkdir()
    (folder / "sub" / "deeper.yaml").write_text("domain: [")  # nor subfolders
    config = load(str(folder))
    assert sorted(config.domains) == sorted(EXAMPLES)
    assert len(config.sources) == len(EXAMPLES)


# -- refused files: the reference's messages, with the file and the line ------------------------

REFUSED = [
    ("bad_limit_unit", 6, "invalid rate limit unit 'foo'"),
    ("bad_yaml", 2, "not valid YAML"),
    ("duplicate_key", 6, "duplicate descriptor composite key 'test-domain.key1_value1'"),
    ("empty_domain", 1, "config file cannot have empty domain"),
    ("empty_key", 3, "descriptor has empty key"),
    ("misspelled_key", 5, "config error, unknown key 'ratelimit'"),
    ("misspelled_key2", 7, "config error, unknown key 'requestsperunit'"),
    ("non_map_list", 3, "config error, yaml file contains list of type other than map: a"),
    ("non_string_key", 1, "config error, key is not of type string: 0.25"),
    ("replaces_empty", 10, "should not have an empty replaces entry"),
    ("replaces_self", 10, "replaces should not contain name of same descriptor"),
    ("unlimited_with_unit", 6, "should not specify rate limit unit when unlimited"),
]


@pytest.mark.parametrize(("name", "line", "words"), REFUSED, ids=[r[0] for r in REFUSED])
def test_refused_with_file_and_line(name: str, line: int, words: str) -> None:
    with pytest.raises(EnvoyConfigError) as caught:
        parse(configs.BAD[name], f"{name}.yaml")
    message = str(caught.value)
    assert message.startswith(f"{name}.yaml:{line}: "), message
    assert words in message


# The start of a file with one descriptor, k, whose rate_limit block is open (line 5 is next).
HEAD = "domain: d\ndescriptors:\n  - key: k\n    rate_limit:\n"


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("", 1, "config file cannot have empty domain"),
        (HEAD + "      unit: minute\n", 5, "requests_per_unit is required"),
        (HEAD + "      unit: minute\n      requests_per_unit: -1\n", 6, "0 to 4294967295"),
        (HEAD + "      unit: minute\n      requests_per_unit: five\n", 6, "whole number"),
        (
            HEAD + "      unit: minute\n      requests_per_unit: 5\n      algorithm: leaky\n",
            7,
            "algorithm must be",
        ),
        (
            HEAD + "      unit: second\n      requests_per_unit: 2000000\n      algorithm: gcra\n",
            6,
            "per microsecond",
        ),
        ("domain: d\ndescriptors:\n  - key: k\n    shadow_mode: yes please\n", 4, "true or false"),
        (
            "domain: d\ndescriptors:\n  - key: k\n    value: v\n    share_threshold: true\n",
            5,
            "wildcard values",
        ),
        ("domain: d\ndescriptors:\n  - key: k\n  - key: k\n", 4, "duplicate descriptor composite key 'd.k'"),
        ("domain: d\ndescriptors:\n  - key: k\n    key: j\n", 4, "'key' is given twice"),
        ("domain: d\ndescriptors:\n  - key: k\n    unit: minute\n", 4, "unknown key 'unit'"),
        ("domain: d\ncolour: red\n", 2, "unknown key 'colour'"),
        ("- a\n", 1, "the file must be a mapping"),
    ],
)
def test_coord_refuses_more_with_file_and_line(text: str, line: int, words: str) -> None:
    """Beyond the reference: a missing requests_per_unit (the reference reads 0 and blocks
    everything), values of the wrong type, a repeated or misplaced key."""
    with pytest.raises(EnvoyConfigError) as caught:
        parse(text, "c.yaml")
    message = str(caught.value)
    assert message.startswith(f"c.yaml:{line}: "), message
    assert words in message


def test_duplicate_domain_across_files_names_both(tmp_path: Path) -> None:
    """TestDuplicateDomain: two files of one domain are refused (the reference's default)."""
    folder = write(tmp_path / "conf", {"a.yaml": BASIC, "b.yaml": "domain: test-domain\ndescriptors:\n"})
    with pytest.raises(
        EnvoyConfigError, match=r"b.yaml:1: duplicate domain 'test-domain' \(also in .*a.yaml:2\)"
    ):
        load(str(folder))


def test_a_missing_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(EnvoyConfigError, match="cannot be read"):
        EnvoyLimits(str(tmp_path / "nope.yaml"))


def test_reload_keeps_the_previous_config_when_the_new_one_is_broken(tmp_path: Path) -> None:
    folder = write(tmp_path / "conf", {"a.yaml": EXAMPLES["messaging"]})
    limits = EnvoyLimits(str(folder))
    seen: list[bool] = []
    limits.on_load = seen.append
    write(folder, {"b.yaml": EXAMPLES["internal"]})
    assert limits.reload() and sorted(limits.config.domains) == ["internal", "messaging"]
    write(
        folder,
        {"b.yaml": "domain: internal\ndescriptors:\n  - key: ldap\n    rate_limit:\n      unit: often\n"},
    )
    before = limits.config
    assert not limits.reload()
    assert limits.config is before
    assert seen == [True, False]
