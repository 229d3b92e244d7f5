"""The demo query history: what 24 analysts ran against the warehouse over eight months.

Deterministic (seeded). Realistic in the ways that matter for mining it: the same questions asked
again and again with other dates and ids, variations in style, deprecated tables used before they
were retired, and mistakes — syntax errors, wrong column names, lower-case literals that match
nothing, a missing partition filter that times out. Success, errors and row counts come from
running each query on the warehouse; runtimes are simulated (deterministically).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb

AUTHORS = [
    ("alice", "ads-analytics", 0.02), ("bruno", "ads-analytics", 0.05), ("chen", "ads-analytics", 0.03),
    ("dana", "ads-finance", 0.04), ("emeka", "ads-finance", 0.08), ("fatima", "conversions", 0.03),
    ("gus", "conversions", 0.10), ("hana", "content-analytics", 0.02), ("ivan", "content-analytics", 0.06),
    ("jo", "content-analytics", 0.04), ("kemal", "growth", 0.05), ("lea", "growth", 0.03),
    ("mateo", "growth", 0.12), ("nina", "shopping-analytics", 0.04), ("omar", "shopping-analytics", 0.07),
    ("pia", "ml-platform", 0.02), ("quinn", "ml-platform", 0.05), ("rosa", "ads-ml", 0.03),
    ("sam", "search-analytics", 0.06), ("tara", "ads-analytics", 0.09), ("uma", "content-analytics", 0.03),
    ("vik", "growth", 0.05), ("wen", "ads-finance", 0.02), ("yara", "shopping-analytics", 0.04),
]  # fmt: skip

# (template id, teams that ask it, weight, valid from, valid until, SQL with {placeholders}).
# Dates bound the templates that read deprecated tables: they were used until retired.
TEMPLATES: list[tuple[str, tuple[str, ...], int, date, date, str]] = [
    (
        "weekly_spend_by_advertiser",
        ("ads-analytics", "ads-finance"),
        9,
        date(2026, 8, 1),
        date(2026, 11, 1),
        """
SELECT date_trunc('week', dt) AS week, advertiser_id, sum(spend_usd) AS spend_usd
FROM ads.ad_delivery_daily
WHERE dt BETWEEN DATE '{start}' AND DATE '{end}'
GROUP BY 1, 2
ORDER BY 1, 3 DESC""",
    ),
    (
        "top_advertisers_by_spend",
        ("ads-analytics", "ads-finance"),
        8,
        date(2026, 8, 1),
        date(2026, 11, 1),
        """
SELECT a.advertiser_name, sum(s.spend_usd) AS spend_usd
FROM ads.advertiser_spend_daily s
JOIN ads.advertisers a ON a.advertiser_id = s.advertiser_id
WHERE s.dt >= DATE '{start}'
GROUP BY a.advertiser_name
ORDER BY spend_usd DESC
LIMIT {n}""",
    ),
    (
        "ctr_by_platform",
        ("ads-analytics",),
        7,
        date(2026, 8, 1),
        date(2026, 11, 1),
        """
SELECT platform, sum(clicks) * 1.0 / nullif(sum(impressions), 0) AS ctr
FROM ads.ad_delivery_daily
WHERE dt BETWEEN DATE '{start}' AND DATE '{end}'
GROUP BY platform""",
    ),
    (
        "daily_spend_one_advertiser",
        ("ads-analytics", "ads-finance"),
        6,
        date(2026, 8, 1),
        date(2026, 11, 1),
        """
SELECT dt, sum(spend_usd) AS spend_usd, sum(impressions) AS impressions, sum(clicks) AS clicks
FROM ads.ad_delivery_daily
WHERE advertiser_id = {adv} AND dt >= DATE '{start}'
GROUP BY dt
ORDER BY dt""",
    ),
    (
        "cpc_by_objective",
        ("ads-analytics",),
        4,
        date(2026, 8, 1),
        date(2026, 11, 1),
        """
SELECT c.objective, sum(d.spend_usd) / nullif(sum(d.clicks), 0) AS cpc
FROM ads.ad_delivery_daily d
JOIN ads.campaigns c ON c.campaign_id = d.campaign_id
WHERE d.dt BETWEEN DATE '{start}' AND DATE '{end}'
GROUP BY c.objective
ORDER BY cpc""",
    ),
    (
        "budget_changes_per_campaign",
        ("ads-finance",),
        3,
        date(2026, 8, 1),
        date(2026, 11, 1),
        """
SELECT campaign_id, count(*) AS changes, sum(new_budget_usd - old_budget_usd) AS net_change_usd
FROM ads.campaign_budget_changes
WHERE changed_at >= TIMESTAMP '{start} 00:00:00'
GROUP BY campaign_id
ORDER BY changes DESC
LIMIT {n}""",
    ),
    (
        "active_campaigns_per_advertiser",
        ("ads-analytics", "ads-finance"),
        4,
        date(2026, 3, 1),
        date(2026, 11, 1),
        """
SELECT advertiser_id, count(*) AS active_campaigns
FROM ads.campaigns
WHERE status = 'ACTIVE'
GROUP BY advertiser_id
ORDER BY active_campaigns DESC
LIMIT {n}""",
    ),
    (
        "spend_by_industry",
        ("ads-finance",),
        4,
        date(2026, 8, 1),
        date(2026, 11, 1),
        """
SELECT a.industry, sum(d.spend_usd) AS spend_usd
FROM ads.ad_delivery_daily d
JOIN ads.advertisers a ON a.advertiser_id = d.advertiser_id
WHERE d.dt BETWEEN DATE '{start}' AND DATE '{end}'
GROUP BY a.industry
ORDER BY spend_usd DESC""",
    ),
    (
        "creative_type_performance",
        ("ads-analytics",),
        3,
        date(2026, 8, 1),
        date(2026, 11, 1),
        """
SELECT ad.creative_type, sum(d.impressions) AS impressions, sum(d.clicks) AS clicks,
       sum(d.clicks) * 1.0 / nullif(sum(d.impressions), 0) AS ctr
FROM ads.ad_delivery_daily d
JOIN ads.ads ad ON ad.ad_id = d.ad_id
WHERE d.dt BETWEEN DATE '{start}' AND DATE '{end}'
GROUP BY ad.creative_type""",
    ),
    (
        "keywords_by_match_type",
        ("ads-analytics",),
        2,
        date(2026, 6, 1),
        date(2026, 11, 1),
        """
SELECT match_type, count(DISTINCT keyword) AS keywords, count(*) AS rows
FROM ads.ads_targeting_keywords
GROUP BY match_type""",
    ),
    (
        "spend_by_country_platform",
        ("ads-analytics", "ads-finance"),
        4,
        date(2026, 8, 1),
        date(2026, 11, 1),
        """
SELECT country, platform, sum(spend_usd) AS spend_usd
FROM ads.ad_delivery_daily
WHERE dt BETWEEN DATE '{start}' AND DATE '{end}' AND country = '{country}'
GROUP BY country, platform""",
    ),
    (
        "conversions_by_event_type",
        ("conversions", "ads-analytics"),
        7,
        date(2026, 8, 1),
        date(2026, 11, 1),
        """
SELECT event_type, count(*) AS conversions, sum(value_usd) AS value_usd
FROM conv.conversion_events
WHERE dt BETWEEN DATE '{start}' AND DATE '{end}'
GROUP BY event_type
ORDER BY conversions DESC""",
    ),
    (
        "roas_by_advertiser",
        ("conversions", "ads-finance"),
        5,
        date(2026, 8, 1),
        date(2026, 11, 1),
        """
WITH spend AS (
    SELECT advertiser_id, sum(spend_usd) AS spend_usd
    FROM ads.advertiser_spend_daily
    WHERE dt BETWEEN DATE '{start}' AND DATE '{end}'
    GROUP BY advertiser_id
), value AS (
    SELECT advertiser_id, sum(value_usd) AS value_usd
    FROM conv.conversion_events
    WHERE dt BETWEEN DATE '{start}' AND DATE '{end}'
    GROUP BY advertiser_id
)
SELECT s.advertiser_id, v.value_usd / nullif(s.spend_usd, 0) AS roas
FROM spend s JOIN value v ON v.advertiser_id = s.advertiser_id
ORDER BY roas DESC
LIMIT {n}""",
    ),
    (
        "checkouts_per_campaign",
        ("conversions",),
        4,
        date(2026, 8, 1),
        date(2026, 11, 1),
        """
SELECT campaign_id, count(*) AS checkouts, sum(value_usd) AS value_usd
FROM conv.conversion_events
WHERE event_type = 'CHECKOUT' AND dt >= DATE '{start}'
GROUP BY campaign_id
ORDER BY checkouts DESC
LIMIT {n}""",
    ),
    (
        "inactive_conversion_tags",
        ("conversions",),
        3,
        date(2026, 5, 1),
        date(2026, 11, 1),
        """
SELECT t.advertiser_id, a.advertiser_name, t.tag_type, t.last_fired_dt
FROM conv.conversion_tags t
JOIN ads.advertisers a ON a.advertiser_id = t.advertiser_id
WHERE NOT t.is_active
ORDER BY t.last_fired_dt""",
    ),
    (
        "offline_match_rate",
        ("conversions",),
        2,
        date(2026, 8, 1),
        date(2026, 11, 1),
        """
SELECT advertiser_id, sum(rows_matched) * 1.0 / sum(rows_received) AS match_rate
FROM conv.offline_conversion_uploads
WHERE dt >= DATE '{start}'
GROUP BY advertiser_id
ORDER BY match_rate""",
    ),
    (
        "view_vs_click_conversions",
        ("conversions",),
        3,
        date(2026, 8, 1),
        date(2026, 11, 1),
        """
SELECT attribution_type, attribution_window_days, count(*) AS conversions
FROM conv.conversion_events
WHERE dt BETWEEN DATE '{start}' AND DATE '{end}'
GROUP BY attribution_type, attribution_window_days""",
    ),
    (
        "top_pins_by_saves",
        ("content-analytics",),
        7,
        date(2026, 8, 1),
        date(2026, 11, 1),
        """
SELECT pin_id, sum(saves) AS saves
FROM content.pin_engagement_daily
WHERE dt BETWEEN DATE '{start}' AND DATE '{end}'
GROUP BY pin_id
ORDER BY saves DESC
LIMIT {n}""",
    ),
    (
        "save_rate_by_surface",
        ("content-analytics",),
        5,
        date(2026, 8, 1),
        date(2026, 11, 1),
        """
SELECT surface, sum(saves) * 1.0 / nullif(sum(impressions), 0) AS save_rate
FROM content.pin_engagement_daily
WHERE dt BETWEEN DATE '{start}' AND DATE '{end}'
GROUP BY surface
ORDER BY save_rate DESC""",
    ),
    (
        "engagement_by_category",
        ("content-analytics",),
        4,
        date(2026, 8, 1),
        date(2026, 11, 1),
        """
SELECT p.category, sum(e.impressions) AS impressions, sum(e.saves) AS saves, sum(e.outbound_clicks) AS clicks
FROM content.pin_engagement_daily e
JOIN content.pins p ON p.pin_id = e.pin_id
WHERE e.dt BETWEEN DATE '{start}' AND DATE '{end}'
GROUP BY p.category""",
    ),
    (
        "video_vs_static",
        ("content-analytics",),
        3,
        date(2026, 8, 1),
        date(2026, 11, 1),
        """
SELECT p.is_video, avg(e.closeups * 1.0 / nullif(e.impressions, 0)) AS closeup_rate
FROM content.pin_engagement_daily e
JOIN content.pins p ON p.pin_id = e.pin_id
WHERE e.dt >= DATE '{start}'
GROUP BY p.is_video""",
    ),
    (
        "top_search_terms",
        ("search-analytics", "content-analytics"),
        5,
        date(2026, 8, 1),
        date(2026, 11, 1),
        """
SELECT search_term, sum(searches) AS searches
FROM content.search_terms_daily
WHERE dt BETWEEN DATE '{start}' AND DATE '{end}' AND country = '{country}'
GROUP BY search_term
ORDER BY searches DESC
LIMIT {n}""",
    ),
    (
        "boards_most_followers",
        ("content-analytics",),
        2,
        date(2026, 3, 1),
        date(2026, 11, 1),
        """
SELECT board_id, board_name, follower_count
FROM content.boards
WHERE NOT is_secret
ORDER BY follower_count DESC
LIMIT {n}""",
    ),
    (
        "creators_new_followers",
        ("content-analytics", "growth"),
        3,
        date(2026, 3, 1),
        date(2026, 11, 1),
        """
SELECT creator_user_id, count(*) AS new_followers
FROM content.creator_follows
WHERE followed_dt >= DATE '{start}'
GROUP BY creator_user_id
ORDER BY new_followers DESC
LIMIT {n}""",
    ),
    (
        "dau_by_platform",
        ("growth",),
        8,
        date(2026, 8, 1),
        date(2026, 11, 1),
        """
SELECT dt, platform, sum(dau) AS dau
FROM users.daily_active_users
WHERE dt BETWEEN DATE '{start}' AND DATE '{end}'
GROUP BY dt, platform
ORDER BY dt, platform""",
    ),
    (
        "weekly_new_users_by_country",
        ("growth",),
        4,
        date(2026, 8, 1),
        date(2026, 11, 1),
        """
SELECT date_trunc('week', dt) AS week, country, sum(new_users) AS new_users
FROM users.daily_active_users
WHERE dt >= DATE '{start}'
GROUP BY 1, 2
ORDER BY 1, 3 DESC""",
    ),
    (
        "avg_session_length",
        ("growth",),
        4,
        date(2026, 8, 1),
        date(2026, 11, 1),
        """
SELECT platform, avg(session_seconds) AS avg_session_seconds, count(*) AS sessions
FROM users.sessions
WHERE dt BETWEEN DATE '{start}' AND DATE '{end}'
GROUP BY platform""",
    ),
    (
        "users_by_demographics",
        ("growth",),
        3,
        date(2026, 3, 1),
        date(2026, 11, 1),
        """
SELECT age_bucket, gender, count(*) AS users
FROM users.users
WHERE account_status = 'ACTIVE'
GROUP BY age_bucket, gender
ORDER BY age_bucket, gender""",
    ),
    (
        "business_signups_monthly",
        ("growth",),
        2,
        date(2026, 3, 1),
        date(2026, 11, 1),
        """
SELECT date_trunc('month', signup_dt) AS month, count(*) AS business_signups
FROM users.users
WHERE is_business AND signup_dt >= DATE '2026-01-01'
GROUP BY 1
ORDER BY 1""",
    ),
    (
        "out_of_stock_by_merchant",
        ("shopping-analytics",),
        4,
        date(2026, 3, 1),
        date(2026, 11, 1),
        """
SELECT m.merchant_name, count(*) AS out_of_stock
FROM shopping.products p
JOIN shopping.merchants m ON m.merchant_id = p.merchant_id
WHERE p.availability = 'OUT_OF_STOCK'
GROUP BY m.merchant_name
ORDER BY out_of_stock DESC
LIMIT {n}""",
    ),
    (
        "product_clicks_by_category",
        ("shopping-analytics",),
        4,
        date(2026, 8, 1),
        date(2026, 11, 1),
        """
SELECT p.product_category, sum(e.product_clicks) AS product_clicks, sum(e.add_to_carts) AS add_to_carts
FROM shopping.product_engagement_daily e
JOIN shopping.products p ON p.product_id = e.product_id
WHERE e.dt BETWEEN DATE '{start}' AND DATE '{end}'
GROUP BY p.product_category""",
    ),
    (
        "merchants_by_tier",
        ("shopping-analytics",),
        2,
        date(2026, 3, 1),
        date(2026, 11, 1),
        """
SELECT merchant_tier, count(*) AS merchants
FROM shopping.merchants
GROUP BY merchant_tier""",
    ),
    (
        "failed_feed_runs",
        ("shopping-analytics",),
        2,
        date(2026, 8, 1),
        date(2026, 11, 1),
        """
SELECT merchant_id, count(*) AS failed_runs
FROM shopping.catalog_feed_runs
WHERE status = 'FAILED' AND started_at >= TIMESTAMP '{start} 00:00:00'
GROUP BY merchant_id
ORDER BY failed_runs DESC
LIMIT {n}""",
    ),
    (
        "score_by_model_version",
        ("ml-platform",),
        4,
        date(2026, 8, 1),
        date(2026, 11, 1),
        """
SELECT model_version, avg(predicted_score) AS avg_score, avg(CASE WHEN label_saved THEN 1.0 ELSE 0.0 END) AS save_rate
FROM ml.ranking_feature_log
WHERE dt BETWEEN DATE '{start}' AND DATE '{end}'
GROUP BY model_version""",
    ),
    (
        "serving_models",
        ("ml-platform", "ads-ml"),
        3,
        date(2026, 3, 1),
        date(2026, 11, 1),
        """
SELECT model_name, model_version, trained_dt, offline_auc
FROM ml.model_versions
WHERE is_serving""",
    ),
    (
        "conversion_label_rate",
        ("ads-ml",),
        3,
        date(2026, 8, 1),
        date(2026, 11, 1),
        """
SELECT dt, avg(CASE WHEN label_conversion THEN 1.0 ELSE 0.0 END) AS conversion_rate,
       avg(CASE WHEN label_click THEN 1.0 ELSE 0.0 END) AS click_rate
FROM ml.training_examples_conversion
WHERE dt >= DATE '{start}'
GROUP BY dt
ORDER BY dt""",
    ),
    (
        "organic_vs_paid_saves",
        ("content-analytics", "ads-analytics"),
        2,
        date(2026, 8, 1),
        date(2026, 11, 1),
        """
WITH paid AS (
    SELECT ad.pin_id, sum(d.saves) AS paid_saves
    FROM ads.ad_delivery_daily d JOIN ads.ads ad ON ad.ad_id = d.ad_id
    WHERE d.dt BETWEEN DATE '{start}' AND DATE '{end}'
    GROUP BY ad.pin_id
)
SELECT p.pin_id, p.paid_saves, sum(e.saves) AS organic_saves
FROM paid p JOIN content.pin_engagement_daily e ON e.pin_id = p.pin_id
WHERE e.dt BETWEEN DATE '{start}' AND DATE '{end}'
GROUP BY p.pin_id, p.paid_saves
ORDER BY p.paid_saves DESC
LIMIT {n}""",
    ),
    # Deprecated tables, used until they were retired.
    (
        "legacy_weekly_cost",
        ("ads-analytics", "ads-finance"),
        6,
        date(2026, 3, 1),
        date(2026, 7, 30),
        """
SELECT date_trunc('week', dt) AS week, adv_id, sum(cost_usd) AS cost
FROM ads.ad_delivery_legacy
WHERE dt BETWEEN DATE '{start}' AND DATE '{end}'
GROUP BY 1, 2
ORDER BY 1, 3 DESC""",
    ),
    (
        "legacy_attributed_conversions",
        ("conversions",),
        5,
        date(2026, 3, 1),
        date(2026, 7, 20),
        """
SELECT g_advertiser_id, sum(conversions) AS conversions, sum(conversion_value) AS value
FROM conv.attributed_conversions_v1
WHERE dt >= DATE '{start}'
GROUP BY g_advertiser_id
ORDER BY conversions DESC
LIMIT {n}""",
    ),
    (
        "legacy_repins",
        ("content-analytics",),
        4,
        date(2026, 3, 1),
        date(2026, 5, 30),
        """
SELECT pin_id, sum(repins) AS repins
FROM content.pin_engagement_v0
WHERE dt BETWEEN DATE '{start}' AND DATE '{end}'
GROUP BY pin_id
ORDER BY repins DESC
LIMIT {n}""",
    ),
    (
        "legacy_users_by_country",
        ("growth",),
        3,
        date(2026, 3, 1),
        date(2026, 3, 1),
        """
SELECT cntry, count(*) AS users FROM users.user_attributes_legacy GROUP BY cntry ORDER BY users DESC""",
    ),
    # A Tier-3 staging table used for reporting (it happens).
    (
        "staging_spend",
        ("ads-analytics",),
        2,
        date(2026, 10, 18),
        date(2026, 11, 1),
        """
SELECT dt, sum(spend_usd) AS spend_usd FROM ads.stg_ad_delivery WHERE dt >= DATE '{start}' GROUP BY dt ORDER BY dt""",
    ),
]

# Mistakes analysts make, applied to some runs: (kind, transform).
MISTAKES = ("lowercase_literal", "missing_comma", "wrong_column", "no_partition_filter")


@dataclass
class Run:
    query_id: int
    author: str
    team: str
    executed_at: datetime
    sql: str
    template: str
    mistake: str | None


def _fill(sql: str, rng: random.Random, when: date) -> str:
    end = min(when - timedelta(days=1), date(2026, 10, 31))
    span = rng.choice([7, 7, 14, 28, 28, 30, 90])
    start = end - timedelta(days=span - 1)
    return sql.format(
        start=start.isoformat(),
        end=end.isoformat(),
        adv=rng.choice([3, 7, 11, 42, 108, 250, 999, 1234]),
        n=rng.choice([10, 10, 20, 25, 50, 100]),
        country=rng.choice(["US", "US", "GB", "DE", "FR", "BR"]),
    )


def _mistake(sql: str, kind: str) -> str | None:
    if kind == "lowercase_literal":
        for upper in ("'ACTIVE'", "'CHECKOUT'", "'OUT_OF_STOCK'", "'FAILED'", "'US'", "'GB'", "'DE'"):
            if upper in sql:
                return sql.replace(upper, upper.lower(), 1)
        return None
    if kind == "missing_comma":
        return sql.replace(", sum(", " sum(", 1) if ", sum(" in sql else None
    if kind == "wrong_column":
        for right, wrong in (("spend_usd", "spend"), ("saves", "save_count"), ("dau", "daily_users")):
            if f"sum({right})" in sql:
                return sql.replace(f"sum({right})", f"sum({wrong})", 1)
        return None
    if kind == "no_partition_filter" and "FROM ads.ad_delivery_daily\nWHERE dt BETWEEN" in sql:
        return sql.replace("WHERE dt BETWEEN", "WHERE dt IS NOT NULL OR dt BETWEEN", 1)
    return None


def generate(count: int = 420, seed: int = 7) -> list[Run]:
    rng = random.Random(seed)
    runs: list[Run] = []
    weights = [t[2] for t in TEMPLATES]
    while len(runs) < count:
        template_id, teams, _, valid_from, valid_until, sql = rng.choices(TEMPLATES, weights)[0]
        author, team, error_rate = rng.choice([a for a in AUTHORS if a[1] in teams])
        days = max(1, (valid_until - valid_from).days)
        when = valid_from + timedelta(days=rng.randrange(days))
        executed_at = datetime(
            when.year, when.month, when.day, rng.randrange(8, 19), rng.randrange(60), rng.randrange(60)
        )
        text = _fill(sql, rng, when).strip()
        mistake = None
        if rng.random() < error_rate * 2.5:
            kind = rng.choice(MISTAKES)
            changed = _mistake(text, kind)
            if changed is not None:
                text, mistake = changed, kind
        # Style variation: some analysts write lower-case keywords or add a trailing semicolon.
        if author in ("bruno", "ivan", "omar") and rng.random() < 0.5:
            text = text.replace("SELECT", "select").replace("FROM", "from").replace("WHERE", "where")
        if rng.random() < 0.2:
            text += ";"
        runs.append(Run(len(runs) + 1, author, team, executed_at, text, template_id, mistake))
    runs.sort(key=lambda r: r.executed_at)
    for i, run in enumerate(runs, 1):
        run.query_id = i
    return runs


def write(
    path: Path, warehouse: Path, count: int = 420, seed: int = 7, progress: Callable[[int, int], None] | None = None
) -> int:
    """Run every query on the warehouse (read-only) and write the log as JSON lines; returns the count.

    `progress(done, total)` after each query."""
    runs = generate(count, seed)
    rng = random.Random(seed + 1)
    con = duckdb.connect(str(warehouse), read_only=True)
    lines: list[str] = []
    try:
        for run in runs:
            success, error, rows = True, None, 0
            try:
                if run.mistake == "no_partition_filter":
                    raise TimeoutError("Query exceeded the 300 s limit and was cancelled (no partition filter on dt)")
                result = con.execute(f"SELECT count(*) FROM ({run.sql.rstrip(';')}) q").fetchone()
                rows = int(result[0]) if result else 0
            except (duckdb.Error, TimeoutError) as exc:
                success, error = False, str(exc).splitlines()[0][:300]
            base = {"ads": 900, "conv": 600, "content": 800, "users": 500, "shopping": 300, "ml": 700}
            schema = next((s for s in base if f"{s}." in run.sql), "ads")
            runtime = 300_000 if run.mistake == "no_partition_filter" else int(base[schema] * (0.5 + rng.random() * 3))
            lines.append(
                json.dumps(
                    {
                        "query_id": run.query_id,
                        "author": run.author,
                        "team": run.team,
                        "executed_at": run.executed_at.isoformat(),
                        "runtime_ms": runtime if success or run.mistake == "no_partition_filter" else runtime // 20,
                        "success": success,
                        "error": error,
                        "rows_returned": rows,
                        "sql": run.sql,
                    }
                )
            )
            if progress is not None:
                progress(len(lines), len(runs))
    finally:
        con.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)
    return len(lines)
