-- orderflow → ClickHouse: the flat `order-facts` topic read by ClickHouse's Kafka engine.
-- Published by orderflow-analytics when `analytics.order-facts = true` (README, "Analytics").
-- One record per change of an order, keyed by order id; `version` is the order's latest offset
-- in order-events, so the latest row per order wins and replays change nothing.
--
-- Replace the broker list and topic prefix with yours; run with clickhouse-client --multiquery.

-- 1. The Kafka engine table: what a record carries (JSONEachRow), field for field.
CREATE TABLE order_facts_queue
(
    order_id String,
    version Int64,
    channel LowCardinality(String),
    customer_key String,
    province LowCardinality(String),
    city String,
    payment_method LowCardinality(String),
    total_fen Int64,
    discount_fen Int64,
    shipping_fen Int64,
    paid_fen Int64,
    refunded_fen Int64,
    placed_ms Int64,
    paid_ms Nullable(Int64),
    approved_ms Nullable(Int64),
    routed_ms Nullable(Int64),
    accepted_ms Nullable(Int64),
    shipped_ms Nullable(Int64),
    delivered_ms Nullable(Int64),
    completed_ms Nullable(Int64),
    cancelled_ms Nullable(Int64),
    returned_ms Nullable(Int64),
    is_cancelled UInt8,
    line_skus Array(String),
    line_categories Array(String),
    line_qty Array(UInt32),
    line_unit_price_fen Array(UInt64)
) ENGINE = Kafka
SETTINGS kafka_broker_list = 'kafka:9092',
         kafka_topic_list = 'orderflow.order-facts',
         kafka_group_name = 'clickhouse-order-facts',
         kafka_format = 'JSONEachRow',
         kafka_num_consumers = 1;

-- 2. The table queries read: the latest version of every order.
CREATE TABLE order_facts
(
    order_id String,
    version Int64,
    channel LowCardinality(String),
    customer_key String,
    province LowCardinality(String),
    city String,
    payment_method LowCardinality(String),
    total_fen Int64,
    discount_fen Int64,
    shipping_fen Int64,
    paid_fen Int64,
    refunded_fen Int64,
    placed_at DateTime64(3, 'UTC'),
    paid_ms Nullable(Int64),
    approved_ms Nullable(Int64),
    routed_ms Nullable(Int64),
    accepted_ms Nullable(Int64),
    shipped_ms Nullable(Int64),
    delivered_ms Nullable(Int64),
    completed_ms Nullable(Int64),
    cancelled_ms Nullable(Int64),
    returned_ms Nullable(Int64),
    is_cancelled UInt8,
    line_skus Array(String),
    line_categories Array(String),
    line_qty Array(UInt32),
    line_unit_price_fen Array(UInt64)
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(placed_at)
ORDER BY (order_id);

-- 3. Moves every record from the queue into the table.
CREATE MATERIALIZED VIEW order_facts_mv TO order_facts AS
SELECT * EXCEPT (placed_ms), fromUnixTimestamp64Milli(placed_ms) AS placed_at
FROM order_facts_queue;

-- 4. The seed's KPIs (the same definitions as crates/analytics/src/kpi.rs), for November in
--    the shop's zone: daily valid orders, GMV, AOV, return rate, repurchase rate.
-- SELECT
--     countIf(NOT is_cancelled) / 30 AS daily_valid_orders,
--     sumIf(total_fen, NOT is_cancelled) AS gmv_fen,
--     sumIf(total_fen, NOT is_cancelled) / countIf(NOT is_cancelled) AS aov_fen,
--     countIf(returned_ms IS NOT NULL) / countIf(shipped_ms IS NOT NULL OR delivered_ms IS NOT NULL OR returned_ms IS NOT NULL) AS return_rate
-- FROM order_facts FINAL
-- WHERE toDate(placed_at, 'Asia/Shanghai') BETWEEN '2026-11-01' AND '2026-11-30';
--
-- SELECT countIf(n >= 2) / count() AS repurchase_rate
-- FROM (SELECT customer_key, count() AS n FROM order_facts FINAL
--       WHERE NOT is_cancelled AND toDate(placed_at, 'Asia/Shanghai') BETWEEN '2026-11-01' AND '2026-11-30'
--       GROUP BY customer_key);
