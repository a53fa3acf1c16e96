"""The engine limit of `make bench`: one hand-written PySpark job, one session and no dbt, that computes the same
marts as the dbt project from the same raw tables and seed CSVs, and writes them in the same layout (Parquet,
partitioned by date and campaign, facts bucketed by user id) to the database `peer_pyspark`.

It is what a careful engineer would write by hand for this one job: only the columns the marts need, valid rows
filtered before deduplication (the marts never see rejected rows), each source parsed once and kept for its
several uses, reference data broadcast, and no intermediate tables or tests. User ids are pseudonymised as staging
does it (HMAC-SHA-256 under the warehouse's key), so the marts hold the same ids. The rules are those of the dbt models
(docs/data_contract.md); bench/mart_aggregates.py checks that the output is the same.
"""

from __future__ import annotations

from pathlib import Path

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

DATABASE = "peer_pyspark"

DEVICE_TYPES = {
    "mobile": "mobile",
    "phone": "mobile",
    "smartphone": "mobile",
    "desktop": "desktop",
    "pc": "desktop",
    "tablet": "tablet",
    "ipad": "tablet",
    "ctv": "ctv",
    "tv": "ctv",
    "connected_tv": "ctv",
}


def _text(column: str) -> Column:
    """nullif(trim(column), '')"""
    return F.nullif(F.trim(F.col(column)), F.lit(""))


def _timestamp(column: str) -> Column:
    return F.try_to_timestamp(_text(column))


def _pseudonym(user_id: Column, pads: tuple[bytes, bytes]) -> Column:
    """HMAC-SHA-256 of the id as 64 hex digits, as macros/pseudonymise.sql computes it from the same padded keys."""
    inner_pad, outer_pad = pads
    inner_hash = F.unhex(F.sha2(F.concat(F.lit(inner_pad), F.encode(user_id, "UTF-8")), 256))
    return F.sha2(F.concat(F.lit(outer_pad), inner_hash), 256)


def _device_type(column: str) -> Column:
    standardized = F.lower(F.trim(F.col(column)))
    result = F.lit("unknown")
    for alias, device in reversed(DEVICE_TYPES.items()):
        result = F.when(standardized == alias, F.lit(device)).otherwise(result)
    return result


def _first_copy(valid: DataFrame, key: str, at: str) -> DataFrame:
    """The copy of each id that staging keeps: the earliest (_ingest_date, _source_file, event time)."""
    order = Window.partitionBy(key).orderBy("_ingest_date", "_source_file", at)
    return valid.withColumn("_copy", F.row_number().over(order)).where("_copy = 1").drop("_copy", "_source_file")


def _safe_ratio(numerator: Column, denominator: Column) -> Column:
    return F.when(F.coalesce(denominator, F.lit(0)) == 0, F.lit(None)).otherwise(
        numerator.cast("decimal(38,18)") / denominator.cast("decimal(38,18)")
    )


def _latest(candidates: DataFrame, key: str, id_column: str, at_column: str) -> DataFrame:
    """Per key, the candidate with the greatest (time, id): max_by over a struct, no window sort."""
    latest = F.max_by(F.struct(at_column, id_column), F.struct(at_column, id_column))
    return (
        candidates.groupBy(key)
        .agg(latest.alias("_latest"))
        .select(key, F.col(f"_latest.{id_column}").alias(id_column), F.col(f"_latest.{at_column}").alias(at_column))
    )


def read_seeds(spark: SparkSession, seeds_dir: Path, seed_types: dict[str, dict[str, str]]) -> dict[str, DataFrame]:
    """Each seed CSV with its columns cast by name to the types dbt's seed gives them."""
    return {
        name: F.broadcast(
            spark.read.csv(str(seeds_dir / f"{name}.csv"), header=True).select(
                *(F.col(column).cast(column_type) for column, column_type in types.items())
            )
        )
        for name, types in seed_types.items()
    }


def valid_impressions(spark: SparkSession, seeds: dict[str, DataFrame], pads: tuple[bytes, bytes]) -> DataFrame:
    parsed = spark.table("raw.impressions").select(
        _text("event_id").alias("impression_id"),
        _timestamp("event_time").alias("impression_at"),
        _pseudonym(_text("user_id"), pads).alias("user_id"),
        _text("campaign_id").alias("campaign_id"),
        _text("ad_id").alias("ad_id"),
        F.lower(_text("site_domain")).alias("site_domain"),
        _device_type("device_type").alias("device_type"),
        F.nullif(F.upper(F.trim("country")), F.lit("")).alias("country_code"),
        _text("bid_request_id").alias("bid_request_id"),
        F.col("cost_micros").try_cast("bigint").alias("cost_micros"),
        F.upper(F.trim("currency")).alias("currency"),
        "_source_file",
        "_ingest_date",
    )
    valid = (
        parsed.join(seeds["campaigns"].select("campaign_id"), "campaign_id")
        .join(seeds["currency_rates"], "currency")
        .where("impression_id is not null and impression_at is not null and cost_micros >= 0")
        .withColumn(
            "cost_usd",
            (
                F.col("cost_micros").cast("decimal(19,0)") * F.col("usd_rate") * F.lit("0.000001").cast("decimal(7,6)")
            ).cast("decimal(24,12)"),
        )
        .drop("currency", "usd_rate", "cost_micros")
    )
    return _first_copy(valid, "impression_id", "impression_at").withColumn("event_date", F.to_date("impression_at"))


def valid_clicks(spark: SparkSession, seeds: dict[str, DataFrame], pads: tuple[bytes, bytes]) -> DataFrame:
    parsed = spark.table("raw.clicks").select(
        _text("click_id").alias("click_id"),
        _timestamp("click_time").alias("clicked_at"),
        _pseudonym(_text("user_id"), pads).alias("user_id"),
        _text("campaign_id").alias("campaign_id"),
        _text("ad_id").alias("ad_id"),
        _device_type("device_type").alias("device_type"),
        _text("landing_page_url").alias("landing_page_url"),
        "_source_file",
        "_ingest_date",
    )
    valid = parsed.join(seeds["campaigns"].select("campaign_id"), "campaign_id").where(
        "click_id is not null and clicked_at is not null"
    )
    return _first_copy(valid, "click_id", "clicked_at").withColumn("event_date", F.to_date("clicked_at"))


def valid_conversions(spark: SparkSession, seeds: dict[str, DataFrame], pads: tuple[bytes, bytes]) -> DataFrame:
    value = F.trim("value")
    parsed = spark.table("raw.conversions").select(
        _text("conversion_id").alias("conversion_id"),
        _timestamp("conversion_time").alias("converted_at"),
        _pseudonym(_text("user_id"), pads).alias("user_id"),
        _text("campaign_id").alias("campaign_id"),
        F.lower(_text("conversion_type")).alias("conversion_type"),
        value.try_cast("decimal(18,6)").alias("conversion_value"),
        value.try_cast("decimal(38,18)").alias("conversion_value_exact"),
        F.upper(F.trim("currency")).alias("conversion_currency"),
        "_source_file",
        "_ingest_date",
    )
    valid = (
        parsed.join(seeds["campaigns"].select("campaign_id"), "campaign_id")
        .join(seeds["currency_rates"], parsed.conversion_currency == seeds["currency_rates"].currency)
        .where(
            "conversion_id is not null and converted_at is not null and conversion_value >= 0 "
            "and conversion_value = conversion_value_exact"
        )
        .withColumn("conversion_value_usd", (F.col("conversion_value") * F.col("usd_rate")).cast("decimal(24,12)"))
        .drop("currency", "usd_rate", "conversion_value_exact")
    )
    return _first_copy(valid, "conversion_id", "converted_at").withColumn("event_date", F.to_date("converted_at"))


def valid_bid_requests(spark: SparkSession, seeds: dict[str, DataFrame]) -> DataFrame:
    parsed = spark.table("raw.bid_requests").select(
        _text("id").alias("bid_request_id"),
        F.col("timestamp").alias("requested_at"),
        F.lower(F.trim("exchange")).alias("exchange"),
        F.col("imp")[0]["bidfloor"].cast("decimal(18,6)").alias("bid_floor_cpm"),
        F.nullif(F.trim("outcome.campaign_id"), F.lit("")).alias("campaign_id"),
        F.coalesce("outcome.bid", F.lit(False)).alias("is_bid"),
        F.col("outcome.bid_price").cast("decimal(18,6)").alias("bid_price_cpm"),
        F.coalesce("outcome.win", F.lit(False)).alias("is_win"),
        F.col("outcome.clearing_price").cast("decimal(18,6)").alias("clearing_price_cpm"),
        "_source_file",
        "_ingest_date",
    )
    valid = parsed.join(seeds["campaigns"].select("campaign_id"), "campaign_id").where(
        """bid_request_id is not null and requested_at is not null
        and not coalesce(bid_floor_cpm < 0, false)
        and not (is_bid and bid_price_cpm is null)
        and not coalesce(is_bid and bid_price_cpm < bid_floor_cpm, false)
        and not (is_win and not is_bid)
        and not (is_win and clearing_price_cpm is null)
        and not coalesce(is_win and clearing_price_cpm > bid_price_cpm, false)"""
    )
    return _first_copy(valid, "bid_request_id", "requested_at").withColumn("event_date", F.to_date("requested_at"))


def _within(later: Column, earlier: Column, hours: int) -> Column:
    return (earlier <= later) & (earlier >= later - F.make_dt_interval(F.lit(0), F.lit(hours)))


def build_marts(
    spark: SparkSession,
    seeds_dir: Path,
    seed_types: dict[str, dict[str, str]],
    windows: dict[str, int],
    user_buckets: int,
    pads: tuple[bytes, bytes],
) -> None:
    seeds = read_seeds(spark, seeds_dir, seed_types)
    campaigns = F.broadcast(
        seeds["campaigns"]
        .join(seeds["advertisers"], "advertiser_id", "left")
        .select("campaign_id", "campaign_name", "advertiser_id", "advertiser_name", "channel")
    )
    users = F.broadcast(
        seeds["user_demographics"].select(
            _pseudonym(F.col("user_id"), pads).alias("user_id"),
            "age_band",
            "gender",
            F.col("region").alias("user_region"),
            F.split("interests", "\\|").alias("interests"),
        )
    )
    countries = seeds["geo_countries"].select("country_code", "country_name", F.col("region").alias("country_region"))

    impressions = valid_impressions(spark, seeds, pads).persist(StorageLevel.MEMORY_AND_DISK)
    clicks = valid_clicks(spark, seeds, pads).persist(StorageLevel.MEMORY_AND_DISK)
    conversions = valid_conversions(spark, seeds, pads)
    bid_requests = valid_bid_requests(spark, seeds)

    # Clicks: the latest impression of the same user, campaign and ad at most the window earlier.
    impression_keys = impressions.select(
        "impression_id",
        "impression_at",
        F.col("user_id").alias("i_user"),
        F.col("campaign_id").alias("i_campaign"),
        F.col("ad_id").alias("i_ad"),
    )
    click_candidates = clicks.join(
        impression_keys,
        (clicks.user_id == impression_keys.i_user)
        & (clicks.campaign_id == impression_keys.i_campaign)
        & (clicks.ad_id == impression_keys.i_ad)
        & _within(clicks.clicked_at, impression_keys.impression_at, windows["click_to_impression"]),
    ).select("click_id", "impression_id", "impression_at")
    clicks_matched = (
        clicks.join(_latest(click_candidates, "click_id", "impression_id", "impression_at"), "click_id", "left")
        .withColumn("has_impression", F.col("impression_id").isNotNull())
        .persist(StorageLevel.MEMORY_AND_DISK)
    )

    # Conversions: the last click within the click-through window, else the last impression within the
    # view-through window.
    click_keys = clicks.select(
        F.col("click_id").alias("c_click_id"),
        F.col("clicked_at").alias("c_clicked_at"),
        F.col("user_id").alias("c_user"),
        F.col("campaign_id").alias("c_campaign"),
    )
    conversion_clicks = conversions.join(
        click_keys,
        (conversions.user_id == click_keys.c_user)
        & (conversions.campaign_id == click_keys.c_campaign)
        & _within(conversions.converted_at, click_keys.c_clicked_at, windows["click_through"]),
    ).select("conversion_id", "c_click_id", "c_clicked_at")
    conversion_views = conversions.join(
        impression_keys,
        (conversions.user_id == impression_keys.i_user)
        & (conversions.campaign_id == impression_keys.i_campaign)
        & _within(conversions.converted_at, impression_keys.impression_at, windows["view_through"]),
    ).select("conversion_id", "impression_id", "impression_at")
    last_click = _latest(conversion_clicks, "conversion_id", "c_click_id", "c_clicked_at")
    last_view = _latest(conversion_views, "conversion_id", "impression_id", "impression_at")
    attributed = (
        conversions.join(last_click, "conversion_id", "left")
        .join(last_view, "conversion_id", "left")
        .withColumn(
            "attribution_type",
            F.when(F.col("c_click_id").isNotNull(), "click")
            .when(F.col("impression_id").isNotNull(), "view_through")
            .otherwise("unattributed"),
        )
        .withColumn("attributed_click_id", F.col("c_click_id"))
        .withColumn("attributed_impression_id", F.when(F.col("c_click_id").isNull(), F.col("impression_id")))
        .withColumn(
            "seconds_to_convert",
            (
                F.unix_millis("converted_at")
                - F.unix_millis(
                    F.coalesce("c_clicked_at", F.when(F.col("c_click_id").isNull(), F.col("impression_at")))
                )
            )
            / 1000,
        )
        .withColumn("is_attributed", F.col("attribution_type") != "unattributed")
    )

    clicked = (
        clicks_matched.where("has_impression").select("impression_id").distinct().withColumn("is_clicked", F.lit(True))
    )
    fct_impressions = (
        impressions.join(clicked, "impression_id", "left")
        .join(campaigns, "campaign_id", "left")
        .join(users, "user_id", "left")
        .join(F.broadcast(countries), "country_code", "left")
        .select(
            "impression_id",
            "impression_at",
            "user_id",
            "advertiser_id",
            "advertiser_name",
            "campaign_name",
            "channel",
            "ad_id",
            "site_domain",
            "device_type",
            "country_code",
            "country_name",
            "country_region",
            "age_band",
            "gender",
            "user_region",
            "interests",
            "bid_request_id",
            F.col("bid_request_id").isNotNull().alias("is_rtb"),
            "cost_usd",
            F.coalesce("is_clicked", F.lit(False)).alias("is_clicked"),
            "event_date",
            "campaign_id",
        )
    )
    fct_clicks = (
        clicks_matched.join(campaigns, "campaign_id", "left")
        .join(users, "user_id", "left")
        .select(
            "click_id",
            "clicked_at",
            "user_id",
            "advertiser_id",
            "advertiser_name",
            "campaign_name",
            "ad_id",
            "device_type",
            "landing_page_url",
            "impression_id",
            "impression_at",
            "has_impression",
            "age_band",
            "gender",
            "user_region",
            "event_date",
            "campaign_id",
        )
    )
    fct_conversions = (
        attributed.join(campaigns, "campaign_id", "left")
        .join(users, "user_id", "left")
        .select(
            "conversion_id",
            "converted_at",
            "user_id",
            "advertiser_id",
            "advertiser_name",
            "campaign_name",
            "conversion_type",
            "conversion_value",
            "conversion_currency",
            "conversion_value_usd",
            "attribution_type",
            "is_attributed",
            "attributed_click_id",
            "attributed_impression_id",
            "seconds_to_convert",
            "age_band",
            "gender",
            "user_region",
            "event_date",
            "campaign_id",
        )
    )

    spark.sql(f"create database if not exists {DATABASE}")
    for name, frame in (
        ("fct_impressions", fct_impressions),
        ("fct_clicks", fct_clicks),
        ("fct_conversions", fct_conversions),
    ):
        (
            frame.write.format("parquet")
            .mode("overwrite")
            .partitionBy("event_date", "campaign_id")
            .bucketBy(user_buckets, "user_id")
            .saveAsTable(f"{DATABASE}.{name}")
        )

    # Daily aggregates from the facts just written (as dbt's agg_campaign_daily reads its facts).
    written = {name: spark.table(f"{DATABASE}.{name}") for name in ("fct_impressions", "fct_clicks", "fct_conversions")}
    daily_impressions = (
        written["fct_impressions"]
        .groupBy("event_date", "campaign_id")
        .agg(F.count("*").alias("impressions"), F.sum("cost_usd").alias("spend_usd_exact"))
    )
    daily_clicks = written["fct_clicks"].groupBy("event_date", "campaign_id").agg(F.count("*").alias("clicks"))
    daily_conversions = (
        written["fct_conversions"]
        .groupBy("event_date", "campaign_id")
        .agg(
            F.count("*").alias("conversions"),
            F.count_if("is_attributed").alias("attributed_conversions"),
            F.sum(F.when(F.col("is_attributed"), F.col("conversion_value_usd"))).alias("revenue_usd_exact"),
        )
    )
    measures = (
        daily_impressions.join(daily_clicks, ["event_date", "campaign_id"], "full")
        .join(daily_conversions, ["event_date", "campaign_id"], "full")
        .fillna(0, ["impressions", "clicks", "conversions", "attributed_conversions"])
        .withColumn("spend_usd_exact", F.coalesce("spend_usd_exact", F.lit(0)))
        .withColumn("revenue_usd_exact", F.coalesce("revenue_usd_exact", F.lit(0)))
    )
    agg_campaign_daily = measures.join(campaigns, "campaign_id", "left").select(
        "campaign_id",
        "campaign_name",
        "advertiser_id",
        "advertiser_name",
        "impressions",
        "clicks",
        "conversions",
        "attributed_conversions",
        F.round("spend_usd_exact", 6).cast("decimal(18,6)").alias("spend_usd"),
        F.round("revenue_usd_exact", 6).cast("decimal(18,6)").alias("revenue_usd"),
        _safe_ratio(F.col("clicks"), F.col("impressions")).alias("ctr"),
        _safe_ratio(F.col("conversions"), F.col("clicks")).alias("cvr"),
        _safe_ratio(F.col("spend_usd_exact"), F.col("clicks")).alias("cpc_usd"),
        _safe_ratio(F.col("spend_usd_exact") * 1000, F.col("impressions")).alias("cpm_usd"),
        _safe_ratio(F.col("spend_usd_exact"), F.col("attributed_conversions")).alias("cpa_usd"),
        _safe_ratio(F.col("revenue_usd_exact"), F.col("spend_usd_exact")).alias("roas"),
        "event_date",
    )

    served = (
        impressions.where("bid_request_id is not null")
        .groupBy("bid_request_id")
        .agg(F.lit(True).alias("has_impression"))
    )
    daily_rtb = (
        bid_requests.join(served, "bid_request_id", "left")
        .groupBy("event_date", "exchange", "campaign_id")
        .agg(
            F.count("*").alias("bid_requests"),
            F.count_if("is_bid").alias("bids"),
            F.count_if("is_win").alias("wins"),
            F.count_if(F.col("is_win") & F.col("has_impression").isNotNull()).alias("impressions_served"),
            F.sum(F.when(F.col("is_win"), F.col("clearing_price_cpm"))).alias("clearing_price_cpm_sum"),
        )
    )
    agg_rtb_daily = daily_rtb.select(
        "exchange",
        "campaign_id",
        "bid_requests",
        "bids",
        "wins",
        "impressions_served",
        _safe_ratio(F.col("bids"), F.col("bid_requests")).alias("bid_rate"),
        _safe_ratio(F.col("wins"), F.col("bids")).alias("win_rate"),
        _safe_ratio(F.col("clearing_price_cpm_sum"), F.col("wins")).alias("avg_clearing_price_cpm"),
        "event_date",
    )
    for name, frame in (("agg_campaign_daily", agg_campaign_daily), ("agg_rtb_daily", agg_rtb_daily)):
        frame.write.format("parquet").mode("overwrite").partitionBy("event_date").saveAsTable(f"{DATABASE}.{name}")

    impressions.unpersist()
    clicks.unpersist()
    clicks_matched.unpersist()


def project_config() -> dict:
    """From dbt_project.yml, so that both builds use the same: the seeds' column types, the attribution windows and
    the bucket count."""
    import yaml

    from ingestion.settings import PROJECT_DIR

    project = yaml.safe_load((PROJECT_DIR / "dbt_project.yml").read_text())
    variables = project["vars"]
    seeds = project["seeds"][project["name"]]
    return {
        "seed_types": {name: config["+column_types"] for name, config in seeds.items() if not name.startswith("+")},
        "windows": {
            "click_to_impression": int(variables["click_to_impression_window_hours"]),
            "click_through": int(variables["click_through_window_hours"]),
            "view_through": int(variables["view_through_window_hours"]),
        },
        "user_buckets": int(variables["user_buckets"]),
    }


def measure(settings) -> dict:
    """Start a session, build the marts, and time both; then the aggregates of dbt's marts and of these."""
    import time

    from bench.mart_aggregates import mart_aggregates
    from ingestion.pseudonyms import pseudonym_pads
    from ingestion.settings import PROJECT_DIR
    from ingestion.spark import get_spark

    started = time.perf_counter()
    spark = get_spark(settings)
    spark.sql("select 1").collect()
    session_s = time.perf_counter() - started

    configuration = project_config()
    started = time.perf_counter()
    build_marts(spark, PROJECT_DIR / "seeds", **configuration, pads=pseudonym_pads(settings))
    job_s = time.perf_counter() - started

    def fetch(query: str) -> list:
        return spark.sql(query).collect()

    result = {
        "session_s": session_s,
        "job_s": job_s,
        "aggregates": mart_aggregates(fetch, DATABASE),
        "dbt_aggregates": mart_aggregates(fetch, "marts"),
    }
    spark.stop()
    return result
