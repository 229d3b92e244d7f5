"""The demo warehouse: an ads + content analytics warehouse in one DuckDB file, generated from SQL.

Deterministic: every value comes from a hash of the row number and a per-column salt (macros
below, integer arithmetic only), so the same code writes the same data on any machine. The data
ends on `LAST_DT`; the largest fact table has 3,000,000 rows, so a missing `dt` filter matters.

What makes retrieval hard is here on purpose: Tier-3 staging copies and legacy tables that look
like Tier-1 ones, deprecated tables with successors, undocumented tables and columns, synonymous
column names (`adv_id`, `g_advertiser_id`), PII columns, and upper-case low-cardinality values.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import duckdb

FIRST_DT = date(2026, 8, 1)
LAST_DT = date(2026, 10, 31)
DAYS = (LAST_DT - FIRST_DT).days + 1

# Integer-only mixing (xorshift-multiply on 32 bits): stable across DuckDB versions and platforms.
MACROS = [
    "CREATE OR REPLACE MACRO _h1(i, s) AS ((i + s * 1000003) * 2654435761) % 4294967296",
    "CREATE OR REPLACE MACRO _h2(x) AS (xor(x, x >> 16) * 73244475) % 4294967296",
    "CREATE OR REPLACE MACRO _h3(x) AS (xor(x, x >> 13) * 1597334677) % 4294967296",
    "CREATE OR REPLACE MACRO rnd(i, s) AS xor(_h3(_h2(_h1(i, s))), _h3(_h2(_h1(i, s))) >> 16) / 4294967296.0",
    "CREATE OR REPLACE MACRO pick(i, s, n) AS CAST(floor(rnd(i, s) * n) AS BIGINT)",
    # A skewed pick: low ids are popular (power law), like real advertisers and pins.
    "CREATE OR REPLACE MACRO skew(i, s, n) AS CAST(floor(pow(rnd(i, s), 2.2) * n) AS BIGINT)",
    f"CREATE OR REPLACE MACRO day(i, s) AS DATE '{FIRST_DT.isoformat()}' + CAST(pick(i, s, {DAYS}) AS INTEGER)",
    "CREATE OR REPLACE MACRO choose(i, s, arr) AS arr[1 + pick(i, s, len(arr))]",
]

PLATFORMS = "['WEB', 'IOS', 'ANDROID']"
COUNTRIES = "['US', 'US', 'US', 'GB', 'DE', 'FR', 'BR', 'JP', 'CA', 'MX']"
SURFACES = "['HOME_FEED', 'HOME_FEED', 'SEARCH', 'RELATED_PINS', 'PROFILE']"
N_ADVERTISERS, N_CAMPAIGNS, N_AD_GROUPS, N_ADS = 2_000, 20_000, 60_000, 150_000
N_USERS, N_PINS, N_BOARDS, N_MERCHANTS, N_PRODUCTS = 300_000, 500_000, 80_000, 1_500, 200_000

# (schema.table, SQL that creates it). Order matters only for readability.
TABLES: list[tuple[str, str]] = [
    # -- ads ------------------------------------------------------------------------------------
    (
        "ads.advertisers",
        f"""
        SELECT i AS advertiser_id,
               'Advertiser ' || i AS advertiser_name,
               choose(i, 1, ['RETAIL', 'CPG', 'TRAVEL', 'FINANCE', 'GAMING', 'AUTO', 'ENTERTAINMENT']) AS industry,
               choose(i, 2, {COUNTRIES}) AS country,
               choose(i, 3, ['MANAGED', 'SELF_SERVE', 'SELF_SERVE']) AS account_tier,
               'billing' || i || '@advertiser' || (i % 97) || '.example' AS contact_email,
               DATE '2019-01-01' + CAST(pick(i, 4, 2500) AS INTEGER) AS created_dt
        FROM range({N_ADVERTISERS}) t(i)""",
    ),
    (
        "ads.campaigns",
        f"""
        SELECT i AS campaign_id,
               skew(i, 10, {N_ADVERTISERS}) AS advertiser_id,
               'Campaign ' || i AS campaign_name,
               choose(i, 11, ['AWARENESS', 'CONSIDERATION', 'CONVERSIONS', 'CATALOG_SALES']) AS objective,
               choose(i, 12, ['ACTIVE', 'ACTIVE', 'PAUSED', 'ARCHIVED']) AS status,
               round(20 + rnd(i, 13) * 4980, 2) AS daily_budget_usd,
               DATE '2026-01-01' + CAST(pick(i, 14, 250) AS INTEGER) AS start_dt,
               DATE '2026-06-01' + CAST(pick(i, 15, 300) AS INTEGER) AS end_dt
        FROM range({N_CAMPAIGNS}) t(i)""",
    ),
    (
        "ads.ad_groups",
        f"""
        SELECT i AS ad_group_id,
               pick(i, 20, {N_CAMPAIGNS}) AS campaign_id,
               choose(i, 21, ['KEYWORD', 'INTEREST', 'ACTALIKE', 'RETARGETING']) AS targeting_type,
               choose(i, 22, ['AUTOBID', 'MAX_BID', 'TARGET_CPA']) AS bid_strategy,
               round(0.1 + rnd(i, 23) * 4.9, 2) AS max_bid_usd
        FROM range({N_AD_GROUPS}) t(i)""",
    ),
    (
        "ads.ads",
        f"""
        SELECT i AS ad_id,
               pick(i, 30, {N_AD_GROUPS}) AS ad_group_id,
               pick(i, 31, {N_CAMPAIGNS}) AS campaign_id,
               pick(i, 32, {N_PINS}) AS pin_id,
               choose(i, 33, ['STANDARD', 'STANDARD', 'VIDEO', 'CAROUSEL', 'COLLECTION', 'IDEA']) AS creative_type,
               DATE '2026-01-01' + CAST(pick(i, 34, 300) AS INTEGER) AS created_dt
        FROM range({N_ADS}) t(i)""",
    ),
    (
        "ads.ad_delivery_daily",
        f"""
        SELECT day(i, 40) AS dt,
               skew(i, 41, {N_ADS}) AS ad_id,
               skew(i, 42, {N_CAMPAIGNS}) AS campaign_id,
               skew(i, 43, {N_ADVERTISERS}) AS advertiser_id,
               choose(i, 44, {PLATFORMS}) AS platform,
               choose(i, 45, {COUNTRIES}) AS country,
               CAST(50 + floor(rnd(i, 46) * 5000) AS BIGINT) AS impressions,
               CAST(floor(rnd(i, 47) * 120) AS BIGINT) AS clicks,
               CAST(floor(rnd(i, 48) * 40) AS BIGINT) AS saves,
               round(rnd(i, 49) * 85, 4) AS spend_usd
        FROM range(3000000) t(i)""",
    ),
    (
        "ads.advertiser_spend_daily",
        """
        SELECT dt, advertiser_id, sum(spend_usd) AS spend_usd, sum(impressions) AS impressions,
               sum(clicks) AS clicks
        FROM ads.ad_delivery_daily GROUP BY dt, advertiser_id""",
    ),
    (
        "ads.stg_ad_delivery",
        """
        SELECT *, CAST(dt AS TIMESTAMP) + INTERVAL 26 HOUR AS load_ts
        FROM ads.ad_delivery_daily WHERE dt >= DATE '2026-10-18'""",
    ),
    (
        "ads.ad_delivery_legacy",
        f"""
        SELECT DATE '2026-02-01' + CAST(pick(i, 50, 180) AS INTEGER) AS dt,
               skew(i, 51, {N_ADVERTISERS}) AS adv_id,
               skew(i, 52, {N_CAMPAIGNS}) AS camp_id,
               CAST(50 + floor(rnd(i, 53) * 5000) AS BIGINT) AS imps,
               CAST(floor(rnd(i, 54) * 120) AS BIGINT) AS clks,
               round(rnd(i, 55) * 85, 4) AS cost_usd
        FROM range(400000) t(i)""",
    ),
    (
        "ads.campaign_budget_changes",
        f"""
        SELECT i AS change_id,
               pick(i, 60, {N_CAMPAIGNS}) AS campaign_id,
               round(20 + rnd(i, 61) * 4980, 2) AS old_budget_usd,
               round(20 + rnd(i, 62) * 4980, 2) AS new_budget_usd,
               TIMESTAMP '2026-08-01 00:00:00' + to_seconds(CAST(pick(i, 63, {DAYS * 86400}) AS BIGINT)) AS changed_at,
               'manager' || (i % 300) || '@bastion-ads.example' AS changed_by_email
        FROM range(50000) t(i)""",
    ),
    (
        "ads.ads_targeting_keywords",
        f"""
        SELECT pick(i, 70, {N_AD_GROUPS}) AS ad_group_id,
               choose(i, 71, ['recipes', 'home decor', 'wedding', 'outfit ideas', 'diy', 'travel',
                              'skincare']) AS keyword,
               choose(i, 72, ['EXACT', 'PHRASE', 'BROAD']) AS match_type
        FROM range(120000) t(i)""",
    ),
    # -- conversions ----------------------------------------------------------------------------
    (
        "conv.conversion_events",
        f"""
        SELECT day(i, 80) AS dt,
               i AS conversion_id,
               skew(i, 81, {N_ADVERTISERS}) AS advertiser_id,
               skew(i, 82, {N_CAMPAIGNS}) AS campaign_id,
               skew(i, 83, {N_ADS}) AS ad_id,
               pick(i, 84, {N_USERS}) AS user_id,
               choose(i, 85, ['PAGE_VISIT', 'PAGE_VISIT', 'ADD_TO_CART', 'CHECKOUT', 'SIGNUP', 'LEAD']) AS event_type,
               choose(i, 86, ['CLICK', 'CLICK', 'VIEW']) AS attribution_type,
               choose(i, 87, [1, 7, 7, 30]) AS attribution_window_days,
               round(rnd(i, 88) * 240, 2) AS value_usd,
               choose(i, 89, ['USD', 'USD', 'USD', 'EUR', 'GBP']) AS currency
        FROM range(1000000) t(i)""",
    ),
    (
        "conv.conversion_tags",
        f"""
        SELECT i AS tag_id,
               pick(i, 90, {N_ADVERTISERS}) AS advertiser_id,
               choose(i, 91, ['PINTEREST_TAG', 'CONVERSIONS_API', 'MOBILE_SDK']) AS tag_type,
               rnd(i, 92) < 0.8 AS is_active,
               DATE '2026-09-01' + CAST(pick(i, 93, 61) AS INTEGER) AS last_fired_dt
        FROM range(5000) t(i)""",
    ),
    (
        "conv.attributed_conversions_v1",
        f"""
        SELECT DATE '2026-01-01' + CAST(pick(i, 100, 200) AS INTEGER) AS dt,
               skew(i, 101, {N_ADVERTISERS}) AS g_advertiser_id,
               skew(i, 102, {N_CAMPAIGNS}) AS campaign_id,
               CAST(1 + floor(rnd(i, 103) * 40) AS BIGINT) AS conversions,
               round(rnd(i, 104) * 4000, 2) AS conversion_value
        FROM range(300000) t(i)""",
    ),
    (
        "conv.raw_conversion_pings",
        """
        SELECT TIMESTAMP '2026-10-25 00:00:00' + to_seconds(CAST(pick(i, 110, 7 * 86400) AS BIGINT)) AS received_at,
               pick(i, 111, 5000) AS tag_id,
               (10 + pick(i, 112, 200)) || '.' || pick(i, 113, 255) || '.' || pick(i, 114, 255) || '.'
                 || pick(i, 115, 255) AS ip_address,
               choose(i, 116, ['Mozilla/5.0', 'PinterestApp/12.4 iOS', 'PinterestApp/12.4 Android']) AS user_agent,
               choose(i, 117, ['pagevisit', 'addtocart', 'checkout', 'signup']) AS event_name,
               '{"v":' || i || '}' AS payload
        FROM range(200000) t(i)""",
    ),
    (
        "conv.offline_conversion_uploads",
        f"""
        SELECT i AS upload_id,
               pick(i, 120, {N_ADVERTISERS}) AS advertiser_id,
               day(i, 121) AS dt,
               CAST(100 + floor(rnd(i, 122) * 10000) AS BIGINT) AS rows_received,
               CAST(50 + floor(rnd(i, 123) * 5000) AS BIGINT) AS rows_matched,
               md5('user' || pick(i, 124, {N_USERS}) || '@mail.example') AS hashed_email
        FROM range(8000) t(i)""",
    ),
    # -- content / engagement -------------------------------------------------------------------
    (
        "content.pins",
        f"""
        SELECT i AS pin_id,
               pick(i, 130, {N_USERS}) AS creator_user_id,
               pick(i, 131, {N_BOARDS}) AS board_id,
               choose(i, 132, ['FOOD_AND_DRINK', 'FASHION', 'HOME_DECOR', 'TRAVEL', 'DIY_AND_CRAFTS',
                               'BEAUTY']) AS category,
               rnd(i, 133) < 0.22 AS is_video,
               choose(i, 134, ['en', 'en', 'en', 'es', 'de', 'fr', 'pt', 'ja']) AS language,
               DATE '2024-01-01' + CAST(pick(i, 135, 1000) AS INTEGER) AS created_dt
        FROM range({N_PINS}) t(i)""",
    ),
    (
        "content.boards",
        f"""
        SELECT i AS board_id,
               pick(i, 140, {N_USERS}) AS owner_user_id,
               'Board ' || i AS board_name,
               choose(i, 141, ['FOOD_AND_DRINK', 'FASHION', 'HOME_DECOR', 'TRAVEL', 'DIY_AND_CRAFTS',
                               'BEAUTY']) AS category,
               rnd(i, 142) < 0.1 AS is_secret,
               CAST(floor(pow(rnd(i, 143), 3) * 50000) AS BIGINT) AS follower_count
        FROM range({N_BOARDS}) t(i)""",
    ),
    (
        "content.pin_engagement_daily",
        f"""
        SELECT day(i, 150) AS dt,
               skew(i, 151, {N_PINS}) AS pin_id,
               choose(i, 152, {SURFACES}) AS surface,
               choose(i, 153, {PLATFORMS}) AS platform,
               CAST(10 + floor(rnd(i, 154) * 3000) AS BIGINT) AS impressions,
               CAST(floor(rnd(i, 155) * 200) AS BIGINT) AS closeups,
               CAST(floor(rnd(i, 156) * 60) AS BIGINT) AS saves,
               CAST(floor(rnd(i, 157) * 80) AS BIGINT) AS outbound_clicks,
               CAST(floor(rnd(i, 158) * 5) AS BIGINT) AS hides
        FROM range(2000000) t(i)""",
    ),
    (
        "content.search_terms_daily",
        f"""
        SELECT day(i, 160) AS dt,
               choose(i, 161, ['fall outfits', 'halloween costume', 'thanksgiving recipes',
                               'nail ideas', 'bedroom decor',
                                'christmas gifts', 'hairstyles', 'wedding dress', 'easy dinner',
                                'tattoo ideas']) AS search_term,
               choose(i, 162, {COUNTRIES}) AS country,
               choose(i, 163, {PLATFORMS}) AS platform,
               CAST(100 + floor(rnd(i, 164) * 20000) AS BIGINT) AS searches,
               CAST(floor(rnd(i, 165) * 5000) AS BIGINT) AS clickthroughs
        FROM range(150000) t(i)""",
    ),
    (
        "content.creator_follows",
        f"""
        SELECT pick(i, 170, {N_USERS}) AS follower_user_id,
               skew(i, 171, {N_USERS}) AS creator_user_id,
               DATE '2025-01-01' + CAST(pick(i, 172, 670) AS INTEGER) AS followed_dt
        FROM range(600000) t(i)""",
    ),
    (
        "content.pin_engagement_v0",
        f"""
        SELECT DATE '2026-01-01' + CAST(pick(i, 180, 150) AS INTEGER) AS dt,
               skew(i, 181, {N_PINS}) AS pin_id,
               CAST(10 + floor(rnd(i, 182) * 3000) AS BIGINT) AS impr,
               CAST(floor(rnd(i, 183) * 60) AS BIGINT) AS repins,
               CAST(floor(rnd(i, 184) * 80) AS BIGINT) AS clickthroughs
        FROM range(500000) t(i)""",
    ),
    (
        "content.tmp_engagement_backfill_2023",
        f"""
        SELECT DATE '2023-06-01' + CAST(pick(i, 190, 120) AS INTEGER) AS dt,
               skew(i, 191, {N_PINS}) AS pin_id,
               CAST(floor(rnd(i, 192) * 60) AS BIGINT) AS saves,
               CAST(floor(rnd(i, 193) * 200) AS BIGINT) AS closeups
        FROM range(100000) t(i)""",
    ),
    # -- users ----------------------------------------------------------------------------------
    (
        "users.users",
        f"""
        SELECT i AS user_id,
               'user' || i || '@mail.example' AS email,
               DATE '2015-01-01' + CAST(pick(i, 200, 4300) AS INTEGER) AS signup_dt,
               choose(i, 201, {COUNTRIES}) AS country,
               choose(i, 202, ['FEMALE', 'FEMALE', 'MALE', 'UNSPECIFIED']) AS gender,
               choose(i, 203, ['13-17', '18-24', '25-34', '25-34', '35-44', '45-54', '55+']) AS age_bucket,
               rnd(i, 204) < 0.04 AS is_business,
               choose(i, 205, ['ACTIVE', 'ACTIVE', 'ACTIVE', 'ACTIVE', 'DEACTIVATED', 'SUSPENDED']) AS account_status
        FROM range({N_USERS}) t(i)""",
    ),
    (
        "users.sessions",
        f"""
        SELECT day(i, 210) AS dt,
               i AS session_id,
               skew(i, 211, {N_USERS}) AS user_id,
               choose(i, 212, {PLATFORMS}) AS platform,
               choose(i, 213, ['12.1', '12.2', '12.3', '12.4']) AS app_version,
               (10 + pick(i, 214, 200)) || '.' || pick(i, 215, 255) || '.' || pick(i, 216, 255) || '.'
                 || pick(i, 217, 255) AS ip_address,
               md5('device' || pick(i, 218, 400000)) AS device_id,
               CAST(5 + floor(pow(rnd(i, 219), 2) * 3600) AS BIGINT) AS session_seconds
        FROM range(1000000) t(i)""",
    ),
    (
        "users.daily_active_users",
        f"""
        SELECT DATE '{FIRST_DT.isoformat()}' + CAST(d AS INTEGER) AS dt, p.platform, c.country,
               CAST(20000 + floor(rnd(d * 100 + p.k * 10 + c.k, 230) * 80000) AS BIGINT) AS dau,
               CAST(500 + floor(rnd(d * 100 + p.k * 10 + c.k, 231) * 3000) AS BIGINT) AS new_users
        FROM range({DAYS}) t(d),
             (SELECT * FROM (VALUES (0, 'WEB'), (1, 'IOS'), (2, 'ANDROID')) v(k, platform)) p,
             (SELECT * FROM (VALUES (0, 'US'), (1, 'GB'), (2, 'DE'), (3, 'FR'), (4, 'BR'), (5, 'JP'), (6, 'CA'),
                                     (7, 'MX')) v(k, country)) c""",
    ),
    (
        "users.user_profile_snapshot",
        """
        SELECT DATE '2026-10-30' AS snapshot_dt, user_id, email, country, gender, age_bucket
        FROM users.users WHERE user_id % 3 = 0""",
    ),
    (
        "users.user_attributes_legacy",
        f"""
        SELECT i AS uid, 'user' || i || '@mail.example' AS mail,
               choose(i, 201, {COUNTRIES}) AS cntry,
               DATE '2015-01-01' + CAST(pick(i, 200, 4300) AS INTEGER) AS sgnup_date
        FROM range(250000) t(i)""",
    ),
    # -- shopping -------------------------------------------------------------------------------
    (
        "shopping.merchants",
        f"""
        SELECT i AS merchant_id, 'Merchant ' || i AS merchant_name,
               choose(i, 240, {COUNTRIES}) AS country,
               choose(i, 241, ['ENTERPRISE', 'MID_MARKET', 'SMB', 'SMB']) AS merchant_tier,
               DATE '2022-01-01' + CAST(pick(i, 242, 1500) AS INTEGER) AS onboarded_dt,
               pick(i, 243, {N_ADVERTISERS}) AS advertiser_id
        FROM range({N_MERCHANTS}) t(i)""",
    ),
    (
        "shopping.products",
        f"""
        SELECT i AS product_id,
               skew(i, 250, {N_MERCHANTS}) AS merchant_id,
               'Product ' || i AS title,
               choose(i, 251, ['Acme', 'Northwind', 'Globex', 'Initech', 'Umbrella', 'Hooli']) AS brand,
               choose(i, 252, ['APPAREL', 'HOME', 'BEAUTY', 'ELECTRONICS', 'TOYS']) AS product_category,
               round(3 + pow(rnd(i, 253), 2) * 900, 2) AS price_usd,
               choose(i, 254, ['IN_STOCK', 'IN_STOCK', 'IN_STOCK', 'OUT_OF_STOCK', 'PREORDER']) AS availability,
               pick(i, 255, {N_PINS}) AS pin_id
        FROM range({N_PRODUCTS}) t(i)""",
    ),
    (
        "shopping.product_engagement_daily",
        f"""
        SELECT day(i, 260) AS dt,
               skew(i, 261, {N_PRODUCTS}) AS product_id,
               choose(i, 262, {SURFACES}) AS surface,
               CAST(10 + floor(rnd(i, 263) * 2000) AS BIGINT) AS impressions,
               CAST(floor(rnd(i, 264) * 90) AS BIGINT) AS product_clicks,
               CAST(floor(rnd(i, 265) * 12) AS BIGINT) AS add_to_carts
        FROM range(800000) t(i)""",
    ),
    (
        "shopping.catalog_feed_runs",
        f"""
        SELECT i AS run_id, pick(i, 270, {N_MERCHANTS}) AS merchant_id,
               TIMESTAMP '2026-08-01 00:00:00' + to_seconds(CAST(pick(i, 271, {DAYS * 86400}) AS BIGINT)) AS started_at,
               CAST(floor(rnd(i, 272) * 100000) AS BIGINT) AS items_processed,
               CAST(floor(pow(rnd(i, 273), 6) * 500) AS BIGINT) AS errors,
               choose(i, 274, ['SUCCESS', 'SUCCESS', 'SUCCESS', 'PARTIAL', 'FAILED']) AS status
        FROM range(30000) t(i)""",
    ),
    # -- ML feature logs ------------------------------------------------------------------------
    (
        "ml.ranking_feature_log",
        f"""
        SELECT day(i, 280) AS dt,
               'req-' || (i // 25) AS request_id,
               pick(i // 25, 281, {N_USERS}) AS user_id,
               skew(i, 282, {N_PINS}) AS pin_id,
               choose(i // 25, 283, {SURFACES}) AS surface,
               choose(i, 284, ['homefeed_ranker_v41', 'homefeed_ranker_v42', 'homefeed_ranker_v42']) AS model_version,
               choose(i, 285, ['user_emb_2026_09', 'user_emb_2026_10']) AS user_embedding_version,
               md5('f' || i) AS feature_hash,
               round(rnd(i, 286), 6) AS predicted_score,
               rnd(i, 287) < 0.07 AS label_saved
        FROM range(1000000) t(i)""",
    ),
    (
        "ml.model_versions",
        """
        SELECT * FROM (VALUES
            ('homefeed_ranker', 'homefeed_ranker_v40', DATE '2026-07-02', 0.771, false),
            ('homefeed_ranker', 'homefeed_ranker_v41', DATE '2026-08-20', 0.779, false),
            ('homefeed_ranker', 'homefeed_ranker_v42', DATE '2026-10-01', 0.784, true),
            ('ads_conversion', 'ads_conversion_v7', DATE '2026-08-15', 0.812, false),
            ('ads_conversion', 'ads_conversion_v8', DATE '2026-10-10', 0.819, true),
            ('search_ranker', 'search_ranker_v12', DATE '2026-09-05', 0.745, true)
        ) v(model_name, model_version, trained_dt, offline_auc, is_serving)""",
    ),
    (
        "ml.training_examples_conversion",
        f"""
        SELECT day(i, 290) AS dt, i AS example_id,
               pick(i, 291, {N_USERS}) AS user_id,
               skew(i, 292, {N_ADS}) AS ad_id,
               rnd(i, 293) < 0.04 AS label_click,
               rnd(i, 294) < 0.004 AS label_conversion,
               md5('x' || i) AS feature_hash
        FROM range(500000) t(i)""",
    ),
    (
        "ml.feature_store_user_daily",
        f"""
        SELECT day(i, 300) AS dt, pick(i, 301, {N_USERS}) AS user_id,
               CAST(floor(rnd(i, 302) * 50) AS BIGINT) AS pins_saved_7d,
               CAST(floor(rnd(i, 303) * 30) AS BIGINT) AS sessions_7d,
               CAST(floor(rnd(i, 304) * 10) AS BIGINT) AS ads_clicked_30d,
               md5('device' || pick(i, 305, 400000)) AS device_id
        FROM range(400000) t(i)""",
    ),
]


def build(path: Path, progress: Callable[[str], None] | None = None) -> dict[str, int]:
    """Write the warehouse to `path` (atomically: a temp file renamed at the end); row counts by table.

    `progress(name)` after each table is written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.duckdb")
    tmp.unlink(missing_ok=True)
    counts: dict[str, int] = {}
    con = duckdb.connect(str(tmp))
    try:
        for macro in MACROS:
            con.execute(macro)
        for schema in sorted({name.split(".")[0] for name, _ in TABLES}):
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        for name, select in TABLES:
            con.execute(f"CREATE TABLE {name} AS {select}")
            counts[name] = int(con.execute(f"SELECT count(*) FROM {name}").fetchone()[0])  # type: ignore[index]
            if progress is not None:
                progress(name)
        for macro in MACROS:  # the macros are a generator detail, not part of the warehouse
            con.execute(f"DROP MACRO IF EXISTS {macro.split()[4].split('(')[0]}")
        con.execute("CHECKPOINT")
    finally:
        con.close()
    tmp.replace(path)
    return counts


if __name__ == "__main__":
    started = time.monotonic()
    result = build(Path(".bastion/demo/warehouse.duckdb"), progress=print)
    print(f"{len(result)} tables, {sum(result.values()):,} rows in {time.monotonic() - started:.1f}s")
