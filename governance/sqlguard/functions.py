"""Which functions a query may call, per dialect.

sqlglot models most functions as typed expressions (`exp.Sum`, `exp.DateTrunc`, …); those are allowed
unless denied here. A name sqlglot does not know (`exp.Anonymous`) passes its parser silently — an LLM's
invented `DATE_DIFF_DAYS()` included — so it must be on the dialect's allow-list.
"""

from __future__ import annotations

# Functions that read files, sleep, or reach outside the query: refused everywhere.
DENIED = frozenset({
    "read_csv", "read_csv_auto", "read_parquet", "read_json", "read_json_auto", "read_text", "read_blob",
    "parquet_scan", "csv_scan", "glob", "sniff_csv", "httpfs", "load_extension", "pg_sleep", "pg_read_file",
    "pg_read_binary_file", "pg_ls_dir", "lo_import", "lo_export", "dblink", "sleep", "benchmark", "load_file",
    "sys_exec", "sys_eval", "readfile", "writefile", "fts_match", "query", "query_table", "system",
})  # fmt: skip

# Functions of one dialect that reach the engine's JVM or its file system: refused in that dialect (they are
# not on its allow-list either; named here so that the refusal says why). The Spark engine denies them too.
DENIED_IN_DIALECT: dict[str, frozenset[str]] = {
    "spark": frozenset({"reflect", "java_method", "try_reflect", "read_files", "input_file_name",
                        "input_file_block_start", "input_file_block_length"}),
}  # fmt: skip

_COMMON = {
    "abs", "coalesce", "nullif", "greatest", "least", "round", "floor", "ceil", "ceiling", "lower", "upper",
    "length", "trim", "ltrim", "rtrim", "replace", "substr", "substring", "concat", "cast", "count", "sum",
    "avg", "min", "max", "row_number", "rank", "dense_rank", "ntile", "lag", "lead", "first_value",
    "last_value", "percent_rank", "cume_dist", "instr", "strftime", "date", "time", "datetime", "julianday",
    "typeof", "ifnull", "iif", "printf", "format", "sign", "sqrt", "power", "pow", "exp", "ln", "log", "log10",
    "mod", "random", "char_length", "position", "reverse", "left", "right", "lpad", "rpad",
}  # fmt: skip

ALLOWED_ANONYMOUS: dict[str, frozenset[str]] = {
    "sqlite": frozenset(
        _COMMON
        | {
            "total",
            "group_concat",
            "unicode",
            "hex",
            "quote",
            "zeroblob",
            "likelihood",
            "unixepoch",
            "char",
            "glob_match",
            "soundex",
            "changes",
        }
    ),
    "duckdb": frozenset(
        _COMMON
        | {
            "date_diff",
            "datediff",
            "date_part",
            "datepart",
            "date_add",
            "strptime",
            "epoch",
            "epoch_ms",
            "make_date",
            "last_day",
            "dayname",
            "monthname",
            "list_value",
            "list_agg",
            "string_agg",
            "arg_max",
            "arg_min",
            "mode",
            "median",
            "quantile_cont",
            "quantile_disc",
            "approx_quantile",
            "approx_count_distinct",
            "histogram",
            "bool_and",
            "bool_or",
            "regexp_matches",
            "regexp_extract",
            "regexp_replace",
            "split_part",
            "starts_with",
            "ends_with",
            "contains",
            "hash",
            "md5",
            "isodow",
            "isoyear",
            "week",
            "yearweek",
            "try_cast",
            "typeof",
            "current_date",
            "today",
            "now",
        }
    ),
    "trino": frozenset(
        _COMMON
        | {
            "date_diff",
            "date_add",
            "date_format",
            "date_parse",
            "from_unixtime",
            "to_unixtime",
            "approx_distinct",
            "approx_percentile",
            "arbitrary",
            "max_by",
            "min_by",
            "element_at",
            "cardinality",
            "split_part",
            "regexp_like",
            "regexp_extract",
            "try",
            "try_cast",
            "day_of_week",
            "week_of_year",
            "year_of_week",
            "last_day_of_month",
            "format_datetime",
            "json_extract_scalar",
            "url_extract_host",
            "url_extract_parameter",
            "current_date",
            "now",
        }
    ),
    "spark": frozenset(
        _COMMON
        | {
            "date_add",
            "date_sub",
            "datediff",
            "date_format",
            "to_date",
            "to_timestamp",
            "unix_timestamp",
            "from_unixtime",
            "approx_count_distinct",
            "percentile_approx",
            "collect_list",
            "collect_set",
            "explode",
            "size",
            "element_at",
            "nvl",
            "nvl2",
            "regexp_extract",
            "weekofyear",
            "dayofweek",
            "last_day",
            "months_between",
            "current_date",
            "now",
        }
    ),
    "postgres": frozenset(
        _COMMON
        | {
            "date_part",
            "date_trunc",
            "to_char",
            "to_date",
            "to_timestamp",
            "age",
            "extract",
            "string_agg",
            "array_agg",
            "generate_series",
            "split_part",
            "regexp_replace",
            "regexp_match",
            "initcap",
            "btrim",
            "strpos",
            "percentile_cont",
            "percentile_disc",
            "mode",
            "bool_and",
            "bool_or",
            "justify_days",
            "make_date",
            "current_date",
            "now",
            "div",
        }
    ),
    "mysql": frozenset(
        _COMMON
        | {
            "date_format",
            "datediff",
            "timestampdiff",
            "date_add",
            "date_sub",
            "str_to_date",
            "year",
            "month",
            "day",
            "dayofweek",
            "week",
            "weekofyear",
            "quarter",
            "curdate",
            "now",
            "group_concat",
            "if",
            "locate",
            "mid",
            "truncate",
            "cast",
            "convert",
            "timestamp",
            "unix_timestamp",
            "from_unixtime",
            "last_day",
            "dayname",
            "monthname",
            "char",
        }
    ),
}
