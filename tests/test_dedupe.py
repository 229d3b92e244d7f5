"""The dedupe tool: syntax layer, priors, rules, learned maps, learning, store, MCP server."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import anyio
import duckdb
import pytest
import sqlglot
from mcp import Client
from mcp.server.mcpserver.exceptions import ToolError

from tools.dedupe import (
    DomainMap,
    LearnSettings,
    MapStore,
    Normalizer,
    PatternRule,
    RulesFile,
    URLError,
    anomaly_gate,
    canonicalize,
    diff_maps,
    learn_domain,
    sample,
    statements,
)
from tools.dedupe.fingerprint import (
    SIMHASH_NEAR,
    Fingerprint,
    HttpFetcher,
    Page,
    TableFingerprinter,
    page_fingerprint,
)
from tools.dedupe.learning import RenderCache, learn_pattern_group
from tools.dedupe.model import ParamEvidence
from tools.dedupe.rules import RegexRule, RulesError, load_rules
from tools.dedupe.server import build
from tools.dedupe.service import DedupeSettings
from tools.dedupe.simulator import Site, World, asgi_app
from tools.dedupe.syntax import split

# -- syntax: the public Safe Browsing canonicalization vectors ------------------------------------

# Google Safe Browsing (v4 "URLs and hashing"): the vectors whose rules are also ours.
SAFE_BROWSING_AGREE = {
    "http://www.google.com/": "http://www.google.com/",
    "http://%31%36%38%2e%31%38%38%2e%39%39%2e%32%36/%2E%73%65%63%75%72%65/%77%77%77%2E%65%62%61%79%2E%63%6F%6D/": (
        "http://168.188.99.26/.secure/www.ebay.com/"
    ),
    "http://195.127.0.11/uploads/%20%20%20%20/.verify/.eBaysecure=updateuserdataxplimnbqmn-xplmvalidateinfoswqpcmlx=hgplmcx/": (  # noqa: E501
        "http://195.127.0.11/uploads/%20%20%20%20/.verify/.eBaysecure=updateuserdataxplimnbqmn-xplmvalidateinfoswqpcmlx=hgplmcx/"
    ),
    "http://3279880203/blah": "http://195.127.0.11/blah",
    "http://www.google.com/blah/..": "http://www.google.com/",
    "www.google.com/": "http://www.google.com/",
    "www.google.com": "http://www.google.com/",
    "http://www.evil.com/blah#frag": "http://www.evil.com/blah",
    "http://www.GOOgle.com/": "http://www.google.com/",
    "http://www.google.com.../": "http://www.google.com/",
    "http://www.google.com/foo\tbar\rbaz\n2": "http://www.google.com/foobarbaz2",
    "http://www.google.com/q?r?": "http://www.google.com/q?r?",
    "http://www.google.com/q?r?s": "http://www.google.com/q?r?s",
    "http://evil.com/foo#bar#baz": "http://evil.com/foo",
    "http://evil.com/foo;": "http://evil.com/foo;",
    "http://evil.com/foo?bar;": "http://evil.com/foo?bar;",
    "http://notrailingslash.com": "http://notrailingslash.com/",
    "  http://www.google.com/  ": "http://www.google.com/",
    "https://www.securesite.com/": "https://www.securesite.com/",
    "http://host.com/ab%23cd": "http://host.com/ab%23cd",
    "http://host.com//twoslashes?more//slashes": "http://host.com/twoslashes?more//slashes",
}

# Where Safe Browsing's goal (match a blocklist, whatever the spelling) differs from ours (never
# merge two resources a server may distinguish), we deliberately differ; each row says how.
SAFE_BROWSING_DIFFER = {
    # Repeated unescaping: "%25" (a literal percent) and "%" would become one resource.
    "http://host/%25%32%35": "http://host/%2525",
    "http://host/%25%32%35%25%32%35": "http://host/%2525%2525",
    # An empty query is an empty parameter list: dropped.
    "http://www.google.com/q?": "http://www.google.com/q",
    # Only default ports are removed: another port is another server.
    "http://www.gotaport.com:1234/": "http://www.gotaport.com:1234/",
}
SAFE_BROWSING_REFUSED = {
    # Safe Browsing escapes bytes a host cannot contain; we refuse such hosts with a per-URL error.
    "http://\x01\x80.com/": "control_characters",
    "http:// leadingspace.com/": "invalid_host",
    "%20leadingspace.com/": "invalid_host",
    "http://host%23.com/%257Ea%2521b%2540c%2523d%2524e%25f%255E00%252611%252A22%252833%252944_55%252B": "invalid_host",
    "http://host/%%%25%32%35asd%%": "invalid_percent_encoding",
}


@pytest.mark.parametrize(("url", "expected"), SAFE_BROWSING_AGREE.items())
def test_syntax_layer_agrees_with_safe_browsing_vectors(url: str, expected: str) -> None:
    assert canonicalize(url) == expected


@pytest.mark.parametrize(("url", "expected"), SAFE_BROWSING_DIFFER.items())
def test_syntax_layer_differs_from_safe_browsing_where_that_would_merge_resources(url: str, expected: str) -> None:
    assert canonicalize(url) == expected


@pytest.mark.parametrize(("url", "code"), SAFE_BROWSING_REFUSED.items())
def test_syntax_layer_refuses_hosts_safe_browsing_would_escape(url: str, code: str) -> None:
    with pytest.raises(URLError) as caught:
        canonicalize(url)
    assert caught.value.code == code


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("HTTPS://Example.COM:443/a/./b/../c?b=2&a=1", "https://example.com/a/c?a=1&b=2"),
        ("http://example.com:80", "http://example.com/"),
        ("http://example.com/%7euser/%c3%a9", "http://example.com/~user/%C3%A9"),
        ("http://example.com/?q=%e2%82%ac&x=é y", "http://example.com/?q=%E2%82%AC&x=%C3%A9%20y"),
        ("http://example.com/?a=1&&a=1&b=&=", "http://example.com/?a=1&b="),
        ("http://example.com/?%75tm_source=x", "http://example.com/?utm_source=x"),
        ("http://bücher.de/", "http://xn--bcher-kva.de/"),
        ("http://例え.jp/", "http://xn--r8jz45g.jp/"),
        ("http://0x7f.1/", "http://127.0.0.1/"),
        ("http://[0:0::1]:8080/", "http://[::1]:8080/"),
        ("http://user:secret@example.com/", "http://example.com/"),
        ("http:\\\\example.com\\a\\b", "http://example.com/a/b"),
        ("localhost:8080/x", "http://localhost:8080/x"),
    ],
)
def test_syntax_normalizations(url: str, expected: str) -> None:
    assert canonicalize(url) == expected


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("ftp://example.com/file", "unsupported_scheme"),
        ("javascript:alert(1)", "unsupported_scheme"),
        ("mailto:someone@example.com", "unsupported_scheme"),
        ("http://", "malformed"),
        ("", "empty"),
        ("http://example.com:99999/", "invalid_port"),
        ("http://example.com:http/", "invalid_port"),
        ("http://exa mple.com/", "invalid_host"),
        ("http://example.com/%zz", "invalid_percent_encoding"),
        ("http://example.com/?a=%4", "invalid_percent_encoding"),
        ("http://pаypal.com/", "idn_homograph"),  # Cyrillic а among Latin letters
        ("http://аррӏе.com/", "idn_homograph"),  # all-Cyrillic lookalike of apple.com
        ("http://xn--80ak6aa92e.com/", "idn_homograph"),  # the same, already punycoded
        ("http://example.com/?" + "&".join(f"p{i}=1" for i in range(300)), "too_many_params"),
        ("http://example.com/?q=" + "x" * 10_000, "too_long"),
    ],
)
def test_bad_urls_get_a_specific_error(url: str, code: str) -> None:
    with pytest.raises(URLError) as caught:
        canonicalize(url)
    assert caught.value.code == code


def test_native_script_domains_are_not_homographs() -> None:
    assert canonicalize("http://яндекс.рф/") == "http://xn--d1acpjx3f.xn--p1ai/"
    assert canonicalize("http://пример.ru/").startswith("http://xn--")


def test_a_bad_url_never_fails_the_batch() -> None:
    urls = [
        "https://example.com/a?utm_source=x",
        "ftp://x/",
        "http://a/%zz",
        "https://ex.com/?" + "a=1&" * 400,
        "http://pаypal.com/",
    ]
    results = Normalizer().normalize_many(urls)
    assert results[0].normalized == "https://example.com/a"
    assert [r.error.code if r.error else None for r in results] == [
        None, "unsupported_scheme", "invalid_percent_encoding", "too_many_params", "idn_homograph",
    ]  # fmt: skip


def test_fast_path_agrees_with_the_general_parser() -> None:
    """The hot path skips work for plain URLs; a leading space forces the general parser."""
    world = World.generate(5, 4)
    normalizer = Normalizer()
    urls = [u for site in world.sites for u in site.urls(300, 3)]
    urls += [
        "http://EXAMPLE.com:80//a/./b/../c?z=1&a=%7e&a=2#x",
        "https://a.b/p;jsessionid=ABC?x=1",
        "http://a.b/?a&a=",
    ]
    for url in urls:
        assert normalizer.normalize(url) == normalizer.normalize(" " + url), url
        assert canonicalize(url) == canonicalize(" " + url)


# -- priors and rules ---------------------------------------------------------------------------


def test_priors_drop_tracking_and_session_parameters() -> None:
    explained = Normalizer().explain(
        "https://shop.example/p;jsessionid=A1B2?id=7&utm_campaign=x&gclid=1&PHPSESSID=2&fbclid=3"
    )
    assert explained.normalized == "https://shop.example/p?id=7"
    by_name = {p.name: p for p in explained.params}
    assert by_name["utm_campaign"].decided_by == "prior" and not by_name["utm_campaign"].kept
    assert by_name["PHPSESSID"].reason == "known session token"
    assert by_name["id"].kept and by_name["id"].decided_by == "default"
    assert "session token removed from the path (prior)" in explained.syntax


def test_platform_allowlists_keep_parameters_a_map_would_drop() -> None:
    host = "demo.myshopify.com"
    learned = DomainMap(
        domain=host, version=3,
        patterns=[PatternRule(params=["variant"], important=[]), PatternRule(params=["ref"], important=[])],
    )  # fmt: skip
    normalizer = Normalizer([learned])
    assert normalizer.normalize(f"https://{host}/products/x?variant=1") == f"https://{host}/products/x?variant=1"
    assert normalizer.normalize(f"https://{host}/products/x?ref=nav") == f"https://{host}/products/x"
    sfcc = (
        "https://www.shop.example/on/demandware.store/Sites-S/en/Search-Show?cgid=m&prefn1=color&prefv1=red&srsltid=z"
    )
    assert Normalizer().normalize(sfcc).endswith("?cgid=m&prefn1=color&prefv1=red")
    decision = next(p for p in Normalizer().explain(sfcc).params if p.name == "prefv1")
    assert decision.decided_by == "prior" and decision.reason == "salesforce-commerce-cloud allowlist"


def test_regex_rules_keep_and_drop_with_host_path_and_value(tmp_path: Path) -> None:
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(
        """
platforms:
  store.example.com: shopify
rules:
  - host: "*.example.com"
    param: "v|cb"
    value: "\\\\d{9,}"
    action: drop
    note: cache-busting timestamps
  - host: "news.example.com"
    path: "^/live/"
    param: "utm_source"
    action: keep
    note: live pages render per source
"""
    )
    normalizer = Normalizer(rules=load_rules(rules_file))
    assert normalizer.normalize("https://a.example.com/x?v=1790000000&w=1") == "https://a.example.com/x?w=1"
    assert normalizer.normalize("https://a.example.com/x?v=2") == "https://a.example.com/x?v=2"
    assert (
        normalizer.normalize("https://news.example.com/live/1?utm_source=tv")
        == "https://news.example.com/live/1?utm_source=tv"
    )
    assert normalizer.normalize("https://news.example.com/story/1?utm_source=tv") == "https://news.example.com/story/1"
    assert (
        normalizer.normalize("https://store.example.com/p?variant=9&ref=1")
        == "https://store.example.com/p?ref=1&variant=9"
    )
    keep = next(p for p in normalizer.explain("https://news.example.com/live/1?utm_source=tv").params)
    assert keep.kept and keep.decided_by == "rule"  # a keeping layer wins over the tracking prior
    assert [v.layer for v in keep.verdicts] == ["prior", "rule"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules: [{param: '(', action: drop}]", "not a regular expression"),
        ("rules: [{param: 'x', action: strip}]", "rules.0.action"),
        ("platforms: {a.com: wordpress}", "unknown platform 'wordpress'"),
        ("rules: [unclosed", "not valid YAML"),
    ],
)
def test_bad_rules_files_are_reported_precisely(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    with pytest.raises(RulesError, match=message):
        load_rules(path)


# -- the learned layer at runtime ---------------------------------------------------------------


def _map(domain: str = "shop.example", version: int = 1, **overrides: Any) -> DomainMap:
    patterns = overrides.pop("patterns", None) or [
        PatternRule(
            params=["id", "ref"], important=["id"],
            evidence={"ref": ParamEvidence(tests=20, changes=0, verdict="neutral", reason="0/20 changed")},
        ),
        PatternRule(params=["page", "q"], important=["page", "q"], defaults={"page": ["1"]}),
    ]  # fmt: skip
    return DomainMap(domain=domain, version=version, patterns=patterns, **overrides)


def test_learned_map_keeps_important_drops_neutral_and_default_values() -> None:
    normalizer = Normalizer([_map()])
    assert normalizer.normalize("https://shop.example/p?ref=mail&id=4") == "https://shop.example/p?id=4"
    assert normalizer.normalize("https://shop.example/s?q=red&page=1") == "https://shop.example/s?q=red"
    assert normalizer.normalize("https://shop.example/s?q=red&page=2") == "https://shop.example/s?page=2&q=red"
    # A pattern the map has no rule for keeps everything (nothing is stripped on a guess).
    assert normalizer.normalize("https://shop.example/p?id=4&color=red") == "https://shop.example/p?color=red&id=4"
    # Another host is untouched by this host's map.
    assert normalizer.normalize("https://other.example/p?ref=mail&id=4") == "https://other.example/p?id=4&ref=mail"


def test_explain_says_which_layer_decided_with_evidence() -> None:
    explained = Normalizer([_map(version=7)]).explain("https://Shop.Example/p?ref=mail&id=4&utm_source=x#top")
    assert explained.normalized == "https://shop.example/p?id=4"
    assert explained.pattern == ["id", "ref"] and explained.pattern_learned and explained.map_version == 7
    by_name = {p.name: p for p in explained.params}
    assert by_name["ref"].decided_by == "learned" and "0/20 renders changed" in by_name["ref"].reason
    assert by_name["id"].decided_by == "learned" and by_name["id"].kept
    assert by_name["utm_source"].decided_by == "prior"
    assert "fragment removed" in explained.syntax
    assert any("host" in note for note in explained.syntax)
    default = Normalizer([_map()]).explain("https://shop.example/s?q=a&page=1")
    assert next(p for p in default.params if p.name == "page").reason.startswith("default value '1'")


def test_domain_wide_verdicts_cover_patterns_the_map_lacks() -> None:
    from tools.dedupe.model import DomainParam

    learned = _map(params={
        "ref": DomainParam(neutral=True, patterns=4, tests=60, changes=0),
        "page": DomainParam(neutral=False, patterns=2, tests=30, changes=20, defaults=["1"]),
    })  # fmt: skip
    normalizer = Normalizer([learned])
    assert normalizer.normalize("https://shop.example/c?color=red&ref=x&page=1") == "https://shop.example/c?color=red"
    decision = next(p for p in normalizer.explain("https://shop.example/c?color=red&ref=x").params if p.name == "ref")
    assert "pattern not learned; neutral in all 4 learned pattern(s)" in decision.reason


# -- fingerprints -------------------------------------------------------------------------------


def test_simhash_sees_through_render_noise_but_not_content_changes() -> None:
    site = World.generate(1, 2).sites[0]
    listing = f"https://{site.host}/category/{site.categories[0]}"
    first, again = page_fingerprint(site.render(listing)), page_fingerprint(site.render(listing))
    assert site.render(listing).html != site.render(listing).html  # exact hashes would fail
    assert first.same(again)
    page_two = page_fingerprint(site.render(f"{listing}?{site.names['page']}=2"))
    assert not first.same(page_two)
    assert (first.value ^ page_two.value).bit_count() > 2 * SIMHASH_NEAR  # type: ignore[operator]


def test_other_fingerprints_and_error_pages() -> None:
    page = Page(
        "u", 200, '<html><head><title>A  b</title><meta property="og:title" content="T"></head><body>x</body></html>'
    )
    other = Page(
        "u",
        200,
        '<html><head><title>A b</title><meta property="og:title" content="T"></head><body><p>y</p></body></html>',
    )
    assert page_fingerprint(page, "title_og").same(page_fingerprint(other, "title_og"))
    assert not page_fingerprint(page, "dom").same(page_fingerprint(other, "dom"))
    missing = page_fingerprint(Page("u", 404, "<p>a</p>"))
    assert missing.same(page_fingerprint(Page("u", 404, "<p>b</p>")))
    assert not missing.same(page_fingerprint(page))
    table = TableFingerprinter({"https://a/1": "x", "https://a/2": 0xF0})
    assert anyio.run(table, "https://a/1") == Fingerprint(200, "table", "x")
    assert anyio.run(table, "https://a/3") is None


# -- learning -----------------------------------------------------------------------------------


def _fingerprinter(world: World) -> Any:
    async def fingerprint(url: str) -> Fingerprint | None:
        return page_fingerprint(world.render(url))

    return fingerprint


@pytest.fixture(scope="module")
def shop() -> tuple[World, Site, list[str]]:
    world = World.generate(1, 21)  # index 0 is a "shop"
    site = world.sites[0]
    assert site.kind == "shop"
    return world, site, site.urls(3000, 1)


@pytest.fixture(scope="module")
def learned_maps(shop: tuple[World, Site, list[str]]) -> dict[str, DomainMap]:
    world, site, log = shop
    maps = {}
    for method in ("fixed", "group"):
        settings = LearnSettings(method=method)  # type: ignore[arg-type]
        sampled = sample(log, Normalizer(), domain=site.host)
        maps[method] = asyncio.run(learn_domain(site.host, sampled.patterns, _fingerprinter(world), settings))
    return maps


def test_learning_finds_identity_and_neutral_parameters(
    shop: tuple[World, Site, list[str]], learned_maps: dict[str, DomainMap]
) -> None:
    _, site, _ = shop
    identity, page, tracking = site.names["identity"], site.names["page"], [n for n, _ in site.neutral]
    for method, domain_map in learned_maps.items():
        by_pattern = {tuple(r.params): r for r in domain_map.patterns}
        assert identity in by_pattern[(identity,)].important, method
        for rule in domain_map.patterns:
            for name in set(rule.important) & set(tracking):  # only ever kept for lack of samples
                assert rule.evidence[name].verdict == "kept_few_samples", (method, rule)
        paged = [r for r in domain_map.patterns if page in r.params and r.evidence[page].verdict != "kept_few_samples"]
        assert paged and all(page in r.important for r in paged), method


def test_group_testing_spends_fewer_renders_and_learns_defaults(
    learned_maps: dict[str, DomainMap], shop: tuple[World, Site, list[str]]
) -> None:
    _, site, _ = shop
    group, fixed = learned_maps["group"], learned_maps["fixed"]
    assert group.renders < 0.6 * fixed.renders
    assert "1" in group.params[site.names["page"]].defaults
    assert not any(r.defaults for r in fixed.patterns)  # the published method has no defaults


def test_learned_maps_merge_duplicates_without_merging_identities(
    shop: tuple[World, Site, list[str]], learned_maps: dict[str, DomainMap]
) -> None:
    world, site, _ = shop
    test = site.urls(1500, 2, valid_only=True)
    from tools.dedupe.evaluation import score

    for method, domain_map in learned_maps.items():
        normalizer = Normalizer([domain_map])
        result = score(method, test, [normalizer.normalize(u) for u in test], site, world)
        assert result.identity_false_merges == 0, method
        assert result.precision >= 0.995, method
    baseline = score("syntax", test, [canonicalize(u) for u in test], site, world)
    ours = score("group", test, [Normalizer([learned_maps["group"]]).normalize(u) for u in test], site, world)
    assert ours.recall > baseline.recall + 0.3


def test_few_samples_keep_the_parameter_and_error_pages_are_not_evidence(shop: tuple[World, Site, list[str]]) -> None:
    world, site, _ = shop
    # A pattern seen on two URLs only: not enough samples, so its parameters stay.
    log = [
        f"https://{site.host}/product?{site.names['identity']}=3&zz=1",
        f"https://{site.host}/product?{site.names['identity']}=4&zz=2",
    ]
    sampled = sample(log, Normalizer(), domain=site.host)
    rule = anyio.run(learn_pattern_group, sampled.patterns[0], RenderCache(_fingerprinter(world)), LearnSettings())
    assert set(rule.important) == {site.names["identity"], "zz"}
    assert rule.evidence["zz"].verdict == "kept_few_samples"
    # URLs that 404 say nothing: removing a parameter from an error page leaves an error page.
    broken = [f"https://{site.host}/nowhere?x={i}" for i in range(30)]
    sampled = sample(broken, Normalizer(), domain=site.host)
    rule = anyio.run(learn_pattern_group, sampled.patterns[0], RenderCache(_fingerprinter(world)), LearnSettings())
    assert rule.evidence["x"].tests == 0 and rule.important == ["x"]


def test_sampling_sql_runs_in_duckdb_and_transpiles_for_trino_and_spark(shop: tuple[World, Site, list[str]]) -> None:
    _, site, log = shop
    sampled = sample(log, Normalizer(), domain=site.host, top_patterns=5, per_param=4)
    assert len(sampled.patterns) == 5
    assert sampled.patterns == sorted(sampled.patterns, key=lambda p: -p.urls)
    for pattern in sampled.patterns:
        for name, preps in pattern.by_param.items():
            values = [dict(p.candidates).get(name) for p in preps]
            assert len(preps) <= 4 and len(set(values)) == len(values)  # one URL per distinct value
            counts = pattern.value_counts[name]
            assert values[0] == max(counts, key=lambda v: counts[v]) or len(values) == 1  # the likeliest default first
    for dialect in ("trino", "spark"):
        for sql in statements(dialect):
            assert sqlglot.parse_one(sql, read=dialect) is not None
    assert "MIN_BY" in statements("trino")[2] and "QUALIFY" not in statements("trino")[2]
    duckdb.connect().execute("SELECT 1").fetchall()  # the engine this runs on here


def test_a_log_file_is_read_by_the_engine_with_the_same_samples(
    shop: tuple[World, Site, list[str]], tmp_path: Path
) -> None:
    import pyarrow as pa
    import pyarrow.csv
    import pyarrow.parquet as pq

    from tools.dedupe.sampling import LogError, LogTable

    _, site, log = shop
    urls = [*log, "not a url", "ftp://x.example/?a=1"]

    def samples(source: Any) -> tuple[Any, ...]:
        sampled = sample(source, Normalizer(), domain=site.host, top_patterns=8, per_param=5, seed=2)
        shown = [(p.pattern, p.urls, {k: [u.url() for u in v] for k, v in p.by_param.items()}, p.value_counts)
                 for p in sampled.patterns]  # fmt: skip
        return shown, sampled.log_urls, sampled.rejected, sampled.hosts

    expected = samples(urls)
    assert expected[1] == 3000 and expected[2] == {"invalid_host": 1, "unsupported_scheme": 1}
    table = pa.table({"url": urls, "other": list(range(len(urls)))})
    pq.write_table(table, tmp_path / "log.parquet")
    pa.csv.write_csv(table, tmp_path / "log.csv")
    (tmp_path / "log.txt").write_text("# a comment\n" + "\n".join(urls) + "\n\n")
    for name in ("log.parquet", "log.csv", "log.txt"):
        assert samples(tmp_path / name) == expected, name
    # A DuckDB file's table, through the engine URL.
    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute("CREATE TABLE url_log AS SELECT * FROM read_parquet(?)", [str(tmp_path / "log.parquet")])
    sampled = sample(LogTable("url_log"), Normalizer(), domain=site.host, top_patterns=8, per_param=5, seed=2,
                     engine=str(warehouse))  # fmt: skip
    assert sampled.log_urls == 3000
    # A log without a `url` column, a missing file, a name that is not a table: said so.
    pq.write_table(pa.table({"link": urls}), tmp_path / "links.parquet")
    with pytest.raises(LogError, match="no `url` column"):
        sample(tmp_path / "links.parquet", Normalizer(), domain=site.host)
    with pytest.raises(LogError, match="does not exist"):
        sample(tmp_path / "missing.parquet", Normalizer(), domain=site.host)
    with pytest.raises(LogError, match="not a table name"):
        sample(LogTable("x; DROP TABLE y"), Normalizer(), domain=site.host)


def test_the_learn_command_takes_a_file_or_a_table_of_the_dedupe_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from bastion.cli import app

    monkeypatch.setenv("BASTION_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("BASTION_DEDUPE_ENGINE", raising=False)
    runner = CliRunner()
    for args in ([], ["--log", str(tmp_path / "a.txt"), "--table", "t"]):
        result = runner.invoke(app, ["dedupe", "learn", "shop.example", *args])
        assert result.exit_code != 0 and "exactly one of --log" in result.output
    result = runner.invoke(app, ["dedupe", "learn", "shop.example", "--table", "t", "--fingerprint", "table"])
    assert result.exit_code != 0 and "reads the fingerprints of a --log file" in result.output
    result = runner.invoke(app, ["dedupe", "learn", "shop.example", "--table", "url_log"])
    assert result.exit_code != 0
    assert "url_log cannot be read" in result.output and "BASTION_DEDUPE_ENGINE names (unset" in result.output


def test_the_batch_normalizer_on_duckdb_equals_the_python_one(learned_maps: dict[str, DomainMap]) -> None:
    import pyarrow as pa

    from tools.dedupe.batches import normalize_relation
    from tools.engines import EngineError, connect

    domain_map = learned_maps["group"]
    normalizer = Normalizer([domain_map])
    site = Site.generate(0, 21, "shop")
    urls: list[str | None] = [*site.urls(2000, 5), "not a url", None]
    engine = connect()
    try:
        engine.register_arrow("log", pa.table({"url": pa.array(urls, pa.string())}))
        normalize_relation(engine, "normalized", "log", normalizer)
        got = engine.rows("SELECT url, normalized, normalize_error FROM normalized")
        with pytest.raises(EngineError, match="already has the column"):
            normalize_relation(engine, "again", "normalized", normalizer, column="normalized")
    finally:
        engine.close()
    expected: list[tuple[str | None, str | None, str | None]] = []
    for url in urls:
        try:
            expected.append((url, normalizer.normalize(url) if url is not None else None, None))
        except URLError as exc:
            expected.append((url, None, exc.code))
    assert sorted(got, key=str) == sorted(expected, key=str)
    assert sum(1 for url, normalized, _ in expected if normalized not in (None, url)) > 500


# -- versions, the anomaly gate, diffs ----------------------------------------------------------


def test_store_versions_gate_and_diff(tmp_path: Path) -> None:
    store = MapStore(tmp_path / "maps.db")
    patterns = [PatternRule(params=[f"id{i}", "ref"], important=[f"id{i}"]) for i in range(10)]
    first = store.publish(_map(patterns=patterns), max_flip_share=0.2)
    assert (first.version, first.status) == (1, "active")
    # Two of ten patterns stop keeping their id: within the 20% limit.
    drifted = [PatternRule(params=p.params, important=[] if i < 2 else p.important) for i, p in enumerate(patterns)]
    second = store.publish(_map(patterns=drifted), max_flip_share=0.2)
    assert second.status == "active" and second.gate and second.gate.flipped_patterns == 2
    assert store.get("shop.example", 1).status == "superseded"
    # Five of ten: rejected, kept for review, never served.
    broken = [PatternRule(params=p.params, important=[]) for p in patterns]
    third = store.publish(_map(patterns=broken), max_flip_share=0.2)
    assert third.status == "rejected" and third.gate and not third.gate.passed
    assert store.active("shop.example").version == 2  # type: ignore[union-attr]
    assert (
        Normalizer(store.all_active()).normalize("https://shop.example/?id3=1&ref=2") == "https://shop.example/?id3=1"
    )
    forced = store.publish(_map(patterns=broken), max_flip_share=0.2, override_gate=True, created_by="ops")
    assert forced.status == "active" and forced.gate and forced.gate.overridden
    assert [v.status for v in store.versions("shop.example")] == ["superseded", "superseded", "rejected", "active"]

    diff = diff_maps(store.get("shop.example", 1), store.get("shop.example", 2))
    assert diff.text.splitlines()[0] == "shop.example: v1 → v2  (2 changed, 8 unchanged patterns)"
    assert "~ [id0, ref]: id0 important → neutral" in diff.text
    with pytest.raises(LookupError, match=r"no map version 9 \(versions: 1, 2, 3, 4\)"):
        store.get("shop.example", 9)


def test_gate_only_counts_patterns_both_maps_know() -> None:
    old = _map()
    new = _map(patterns=[PatternRule(params=["x"], important=[])])
    report = anomaly_gate(old, new, 0.0)
    assert report.passed and report.compared_patterns == 0
    diff = diff_maps(old, new)
    assert {c.change for c in diff.changes} == {"added", "removed"}


# -- fetching -----------------------------------------------------------------------------------


def test_http_fetcher_rate_limits_per_domain() -> None:
    from tests.gateway_harness import LiveServer

    site = World.generate(1, 5).sites[0]
    server = LiveServer(asgi_app(site)).start()
    try:
        fetcher = HttpFetcher(requests_per_second=20, allow_private=True)

        async def fetch_all() -> list[Page | None]:
            try:
                return await asyncio.gather(
                    *(fetcher(f"{server.url}/product?{site.names['identity']}={i}") for i in range(1, 6))
                )
            finally:
                await fetcher.aclose()

        start = time.monotonic()
        pages = asyncio.run(fetch_all())
        elapsed = time.monotonic() - start
    finally:
        server.stop()
    assert all(p is not None and p.status == 200 for p in pages)
    assert elapsed >= 4 * (1 / 20) * 0.9  # five requests, four waits of 50 ms on one domain


# -- the MCP server -----------------------------------------------------------------------------


def _call(server: Any, tool: str, **arguments: Any) -> Any:
    return anyio.run(lambda: server.call_tool(tool, arguments))


@pytest.fixture
def dedupe_settings(tmp_path: Path) -> DedupeSettings:
    return DedupeSettings(store=tmp_path / "maps.db", log_dir=tmp_path / "logs", fetch_private=True, fetch_rate=1000)


def test_mcp_normalize_and_dedupe_report_errors_per_url(dedupe_settings: DedupeSettings) -> None:
    server = build(dedupe_settings)
    urls = [
        "https://a.example/x?utm_source=1&id=2",
        "https://A.example/x?id=2#frag",
        "gopher://x",
        "https://a.example/x?id=3",
    ]
    result = _call(server, "normalize_urls", urls=urls).structured_content
    assert [r["normalized"] for r in result["results"]] == [
        "https://a.example/x?id=2", "https://a.example/x?id=2", None, "https://a.example/x?id=3",
    ]  # fmt: skip
    assert result["results"][2]["error"]["code"] == "unsupported_scheme" and result["errors"] == 1
    clusters = _call(server, "dedupe_urls", urls=urls).structured_content
    assert clusters["clusters"][0] == {"canonical": "https://a.example/x?id=2", "urls": urls[:2]}
    assert len(clusters["clusters"]) == 2 and clusters["errors"][0]["url"] == "gopher://x"
    assert clusters["reduction"] == pytest.approx(1 / 3, abs=1e-6)
    explained = _call(server, "explain_url", url="https://a.example/x?utm_source=1").structured_content
    assert explained["params"][0]["decided_by"] == "prior"
    with pytest.raises(ToolError, match="at most 10000 per call"):
        _call(server, "normalize_urls", urls=["https://a/"] * 10_001)


def test_mcp_learn_rules_fetches_over_http_publishes_and_diffs(dedupe_settings: DedupeSettings) -> None:
    from tests.gateway_harness import LiveServer

    site = Site.generate(0, 1, "forum")
    server_http = LiveServer(asgi_app(site)).start()
    try:
        site.host, site.scheme = f"127.0.0.1:{server_http.port}", "http"
        dedupe_settings.log_dir.mkdir(parents=True)
        (dedupe_settings.log_dir / "forum.txt").write_text("\n".join(site.urls(1500, 1)))
        server = build(dedupe_settings)
        updates: list[tuple[float, float | None, str | None]] = []

        async def learn_through_a_client() -> Any:
            async def on_progress(progress: float, total: float | None, message: str | None) -> None:
                updates.append((progress, total, message))

            async with Client(server) as client:
                return await client.call_tool(
                    "learn_rules", {"domain": "127.0.0.1", "source": "forum.txt", "top_patterns": 8, "max_samples": 5},
                    progress_callback=on_progress,
                )  # fmt: skip

        first = anyio.run(learn_through_a_client)
        assert not first.is_error
        outcome = first.structured_content
        assert updates and updates[-1][0] == updates[-1][1] == 8 and "query patterns tested" in (updates[-1][2] or "")
        assert outcome["status"] == "active" and outcome["version"] == 1 and outcome["renders"] > 0
        thread, page = site.names["thread"], site.names["page"]
        url = f"http://127.0.0.1:{server_http.port}/viewtopic?{thread}=9&{page}=1&highlight=moss"
        normalized = _call(server, "normalize_urls", urls=[url]).structured_content
        assert normalized["results"][0]["normalized"] == f"http://127.0.0.1:{server_http.port}/viewtopic?{thread}=9"
        assert normalized["maps"] == {"127.0.0.1": 1}
        second = _call(server, "learn_rules", domain="127.0.0.1", source="forum.txt", top_patterns=12, max_samples=5)
        assert second.structured_content["version"] == 2 and second.structured_content["diff"].startswith(
            "127.0.0.1: v1 → v2"
        )
        diff = _call(server, "rules_diff", domain="127.0.0.1", v1=1, v2=2).structured_content
        assert diff["from_version"] == 1 and diff["to_version"] == 2
        versions = _call(server, "rule_versions").structured_content["result"]
        assert [(v["version"], v["status"]) for v in versions] == [(1, "superseded"), (2, "active")]
    finally:
        server_http.stop()


def test_mcp_learn_rules_from_a_fingerprint_table_without_fetching(dedupe_settings: DedupeSettings) -> None:
    """A crawler's store of fingerprints replaces fetching (these hosts do not resolve here)."""
    world = World.generate(1, 21)
    site = world.sites[0]
    log = site.urls(1500, 1)
    # Fingerprint every URL the learner could ask for: each sample, minus any subset of its parameters.
    wanted: set[str] = set()
    for pattern in sample(log, Normalizer(), domain=site.host, top_patterns=6, per_param=5).patterns:
        for preps in pattern.by_param.values():
            for prep in preps:
                names = sorted({n for n, _ in [*prep.fixed, *prep.candidates]})
                for mask in range(1 << len(names)):
                    wanted.add(prep.url(frozenset(n for bit, n in enumerate(names) if mask >> bit & 1)))
    con = duckdb.connect()
    con.execute("CREATE TABLE t (url VARCHAR, fingerprint VARCHAR)")
    con.executemany(
        "INSERT INTO t VALUES (?, ?)", [(u, str(page_fingerprint(world.render(u)).value)) for u in sorted(wanted)]
    )
    dedupe_settings.log_dir.mkdir(parents=True)
    con.execute(f"COPY t TO '{dedupe_settings.log_dir / 'fingerprints.csv'}' (HEADER)")
    server = build(dedupe_settings)
    outcome = _call(
        server,
        "learn_rules",
        domain=site.host,
        source="fingerprints.csv",
        fingerprint="table",
        top_patterns=6,
        max_samples=5,
    ).structured_content
    assert outcome["status"] == "active" and outcome["renders"] > 0
    identity = site.names["identity"]
    explained = [_call(server, "explain_url", url=u).structured_content for u in log[:300]]
    learned_drops = [
        (e, p)
        for e in explained
        if e["pattern_learned"]
        for p in e["params"]
        if not p["kept"] and p["decided_by"] == "learned"
    ]
    assert learned_drops, "some parameter is learned neutral from the table"
    assert all(p["name"] in dict(site.neutral) for _, p in learned_drops)
    for e, _ in learned_drops:
        assert all(p["kept"] for p in e["params"] if p["name"] == identity)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"domain": "a.com", "source": "../../etc/passwd"}, "outside the log directory"),
        ({"domain": "a.com", "source": "missing.txt"}, "no log named 'missing.txt'"),
        ({"domain": "a.com"}, "exactly one of `source`"),
        ({"domain": "a.com", "urls": ["https://a.com/"], "source": "x.txt"}, "exactly one of `source`"),
        ({"domain": "a.com", "urls": ["https://b.com/?x=1"]}, "no URLs for a.com; it has b.com"),
        (
            {"domain": "a.com", "urls": ["https://a.com/"], "fingerprint": "table"},
            "needs a log with a `fingerprint` column",
        ),
        ({"domain": "exa mple.com", "urls": ["https://a.com/"]}, "domain 'exa mple.com'"),
    ],
)
def test_mcp_learn_rules_bad_input_is_a_tool_error(
    dedupe_settings: DedupeSettings, arguments: dict[str, Any], message: str
) -> None:
    with pytest.raises(ToolError, match=message):
        _call(build(dedupe_settings), "learn_rules", **arguments)


def test_learning_refuses_private_addresses_unless_allowed(tmp_path: Path) -> None:
    server = build(DedupeSettings(store=tmp_path / "m.db", log_dir=tmp_path))
    with pytest.raises(ToolError, match="private address"):
        _call(server, "learn_rules", domain="127.0.0.1", urls=[f"http://127.0.0.1:9/x?a={i}" for i in range(20)])


# -- errors never echo unbounded input ------------------------------------------------------------

HUGE = 2_000_000


def test_mcp_results_for_a_2mb_url_stay_small_and_name_the_error(dedupe_settings: DedupeSettings) -> None:
    server = build(dedupe_settings)
    huge = "https://a.example/?q=" + "x" * HUGE
    for tool, arguments in (
        ("normalize_urls", {"urls": [huge, "https://a.example/?id=1"]}),
        ("dedupe_urls", {"urls": [huge, "https://a.example/?id=1"]}),
        ("explain_url", {"url": huge[:99_000]}),  # its schema caps the argument at 100,000 characters
    ):
        result = _call(server, tool, **arguments)
        serialized = result.model_dump_json()
        assert len(serialized) < 4096, (tool, len(serialized))  # the whole result, both copies of the entry
        content = result.structured_content
        entry = content["results"][0] if tool == "normalize_urls" else (
            content["errors"][0] if tool == "dedupe_urls" else content
        )  # fmt: skip
        assert entry["error"]["code"] == "too_long" and entry["normalized"] is None
        assert len(entry["url"]) <= 200 and entry["url"].startswith("https://a.example/?q=xxx")
        assert entry["url"].endswith(f"({len(arguments.get('url') or huge):,} characters)")
        assert len(entry["error"]["message"]) <= 200
    # The valid URL in the same batch is untouched.
    assert (
        _call(server, "normalize_urls", urls=[huge, "https://a.example/?id=1"]).structured_content["results"][1][
            "normalized"
        ]
        == "https://a.example/?id=1"
    )


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("s" * 900_000 + "://a.example/", "unsupported_scheme"),
        ("http://a.example:" + "9" * 900_000 + "/", "invalid_port"),  # int() of it would raise ValueError
        ("http://a.example:" + "1" * 5_000 + "/", "invalid_port"),
        ("http://a.example:²/", "invalid_port"),  # a Unicode digit int() refuses
        ("http://" + "1." * 400_000 + "1/", "invalid_host"),
        ("http://[" + "1" * 900_000 + "]/", "invalid_host"),
        ("http://[" + "1" * 900_000 + "/", "invalid_host"),
        ("http://" + "a" * 60 + "\u0430" * 900_000 + ".com/", "invalid_host"),
    ],
)
def test_every_url_error_is_bounded(url: str, code: str) -> None:
    normalizer = Normalizer(max_length=1_000_000)
    (result,) = normalizer.normalize_many([url])
    assert result.error is not None and result.error.code == code
    assert len(result.error.message) <= 600 and len(result.url) <= 200
    explained = normalizer.explain(url)
    assert explained.error is not None and explained.error.code == code
    assert len(explained.model_dump_json()) < 2000


def test_explain_notes_quote_long_paths_bounded() -> None:
    url = "https://a.example/" + "%7e" * 2000 + "/./x"
    explained = Normalizer().explain(url)
    assert explained.normalized is not None and explained.syntax
    assert all(len(note) <= 500 for note in explained.syntax)


def test_learn_rules_errors_are_bounded(dedupe_settings: DedupeSettings) -> None:
    server = build(dedupe_settings)
    for arguments in (
        {"domain": "a.com", "source": "y" * 1000},
        {"domain": "a.com", "source": "../" + "z" * 1000},
        {"domain": "a.com", "source": "x" * 5000},  # over the schema's 1,024
        {"domain": "a.com", "source": "nul\x00" + "w" * 900},
    ):
        with pytest.raises(ToolError) as refused:
            _call(server, "learn_rules", **arguments)
        assert len(str(refused.value)) < 1000, arguments
    from tools.dedupe.service import DedupeError, DedupeService

    with pytest.raises(DedupeError) as refused_domain:
        anyio.run(
            lambda: DedupeService(dedupe_settings).learn(
                "exa mple" + "e" * HUGE, ["https://a.com/"], TableFingerprinter({}), LearnSettings(), source="cli",
                created_by=None,
            )
        )  # fmt: skip
    assert "domain 'exa mple" in str(refused_domain.value) and len(str(refused_domain.value)) <= 600


def test_rules_diff_of_an_unknown_version_is_a_tool_error(dedupe_settings: DedupeSettings) -> None:
    with pytest.raises(ToolError, match=r"a.com has no map version 1 \(the domain has no maps\)"):
        _call(build(dedupe_settings), "rules_diff", domain="a.com", v1=1, v2=2)


def test_only_learn_rules_is_annotated_as_writing(dedupe_settings: DedupeSettings) -> None:
    tools = {t.name: t for t in anyio.run(build(dedupe_settings).list_tools)}
    assert set(tools) == {"normalize_urls", "dedupe_urls", "explain_url", "learn_rules", "rules_diff", "rule_versions"}
    for name, tool in tools.items():
        assert tool.annotations is not None
        assert tool.annotations.read_only_hint is (name != "learn_rules"), name
    assert tools["learn_rules"].annotations.open_world_hint is True  # type: ignore[union-attr]


def test_rules_setting_is_loaded(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text("rules: [{param: 'sku', action: drop}]")
    server = build(DedupeSettings(store=tmp_path / "m.db", log_dir=tmp_path, rules=tmp_path / "r.yaml"))
    out = _call(server, "normalize_urls", urls=["https://a.com/?sku=1&id=2"]).structured_content
    assert out["results"][0]["normalized"] == "https://a.com/?id=2"


def test_rules_file_model_round_trip() -> None:
    rule = RegexRule(param="x", action="drop")
    assert RulesFile(rules=[rule]).rules[0].describe() == "rule [host *, param ~ x] drops"
    assert split("https://a.com/?b=1&a=2").params == [("a", "2"), ("b", "1")]


def test_a_normalizer_sees_a_map_published_by_another_process(tmp_path: Path) -> None:
    """Each service asks its store for a revision on every call (now from a kept connection, by SQLite's
    data_version): a version published through another connection to the file is used on the next call, and
    nothing is rebuilt while nothing changes."""
    from tools.dedupe.service import DedupeService, DedupeSettings

    settings = DedupeSettings(store=tmp_path / "maps.db")
    serving, learner = DedupeService(settings), DedupeService(settings)
    before = serving.normalizer()
    assert serving.normalizer() is before and "shop.example" not in before.maps
    learner.store.publish(_map(), max_flip_share=0.2)
    after = serving.normalizer()
    assert after is not before and after.maps["shop.example"].version == 1
    assert serving.normalizer() is after
    learner.store.publish(_map(), max_flip_share=1.0)
    assert serving.normalizer().maps["shop.example"].version == 2


def test_a_normalizer_sees_a_replaced_store_file_and_a_reused_rowid(tmp_path: Path) -> None:
    """Found by review of the kept connection: it stayed on a file that was replaced (a restored backup), so the
    new file's maps were never served; and a deleted last version followed by a new one reused the rowid, which
    the old (count, last rowid) revision could not tell apart."""
    import shutil
    import sqlite3

    from tools.dedupe.service import DedupeService, DedupeSettings

    path = tmp_path / "maps.db"
    serving = DedupeService(DedupeSettings(store=path))
    assert "shop.example" not in serving.normalizer().maps
    other = MapStore(tmp_path / "backup.db")
    other.publish(_map(), max_flip_share=0.2)
    shutil.copy(tmp_path / "backup.db", tmp_path / "incoming.db")
    (tmp_path / "incoming.db").replace(path)  # a new file at the same path
    assert serving.normalizer().maps["shop.example"].version == 1
    with sqlite3.connect(path) as con:  # the last version deleted, a new one published: the same rowid
        con.execute("DELETE FROM maps")
    before = serving.normalizer()
    MapStore(path).publish(_map(domain="other.example"), max_flip_share=0.2)
    after = serving.normalizer()
    assert after is not before and "other.example" in after.maps
