package materialize

import (
	"context"
	"slices"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/tideline-dev/tideline/internal/chdb"
)

// ProfilesOf reads the rows of the customer_profile view for some
// customers: the same columns and values, computed over those customers
// only. Bind it with ProfileArgs.
//
// Filtering the view itself (SELECT * FROM customer_profile WHERE
// customer_id IN ...) costs as much as reading every profile: on
// ClickHouse 18.16 the filter stays outside the view's aggregations, which
// merge the states of every customer first. Here the filter sits where each
// aggregation reads its table. A profile gathers a user's own rows and
// those of the anonymous ids its identifies and aliases linked to it, so
// the tables are read for @raw, the customers asked for (@ids) and every
// anonymous id they claimed; the customer ids resolved after the link (the
// earliest claim wins, as in the view) are kept only when asked for. An
// asked-for anonymous id that a user claimed resolves to that user and so
// has no profile of its own, as in the view. The claimed ids are read
// first, in their own query: as a subquery inside each IN the read took
// half as long again (BENCHMARKS.md).
//
// The attributes repeat customer_attributes_current's rule (the latest
// value by event time, the first for set_once attributes, unset values left
// out, catalog attributes only); TestProfilesOfMatchesTheView compares the
// two on random customers with linked anonymous ids.
const ProfilesOf = `SELECT
    customer_id,
    anonymous_ids,
    first_seen_ms,
    toDateTime(intDiv(first_seen_ms, 1000)) AS first_seen,
    last_seen_ms,
    toDateTime(intDiv(last_seen_ms, 1000)) AS last_seen,
    events,
    attribute_names,
    attribute_values
FROM
(
    SELECT
        if(user_id != '', user_id, raw_id) AS customer_id,
        groupUniqArrayIf(raw_id, user_id != '') AS anonymous_ids,
        min(first_ms) AS first_seen_ms,
        max(last_ms) AS last_seen_ms,
        sum(n) AS events
    FROM
    (
        SELECT customer_id AS raw_id, uniqExactMerge(messages) AS n,
               minMerge(first_seen_ms) AS first_ms, maxMerge(last_seen_ms) AS last_ms
        FROM customer_event_buckets
        WHERE customer_id IN @raw
        GROUP BY customer_id
    ) AS buckets
    ANY LEFT JOIN
    (
        SELECT anonymous_customer_id AS raw_id, tupleElement(argMinMerge(link), 1) AS user_id
        FROM identity_links
        WHERE anonymous_customer_id IN @raw
        GROUP BY anonymous_customer_id
    ) AS links USING raw_id
    GROUP BY customer_id
    HAVING customer_id IN @ids
) AS activity
ANY LEFT JOIN
(
    SELECT customer_id,
           arraySort(groupArray((attribute, value))) AS pairs,
           arrayMap(p -> tupleElement(p, 1), pairs) AS attribute_names,
           arrayMap(p -> tupleElement(p, 2), pairs) AS attribute_values
    FROM
    (
        SELECT customer_id, attribute, tupleElement(chosen, 1) AS value
        FROM
        (
            SELECT customer_id, attribute, if(set_once = 1, f, l) AS chosen
            FROM
            (
                SELECT if(user_id != '', user_id, raw_id) AS customer_id, attribute,
                       argMaxMerge(last_value) AS l, argMinMerge(first_value) AS f
                FROM
                (
                    SELECT customer_id AS raw_id, attribute, last_value, first_value
                    FROM customer_attributes
                    WHERE customer_id IN @raw
                ) AS attrs
                ANY LEFT JOIN
                (
                    SELECT anonymous_customer_id AS raw_id, tupleElement(argMinMerge(link), 1) AS user_id
                    FROM identity_links
                    WHERE anonymous_customer_id IN @raw
                    GROUP BY anonymous_customer_id
                ) AS links USING raw_id
                GROUP BY customer_id, attribute
                HAVING customer_id IN @ids
            ) AS resolved
            ALL INNER JOIN
            (
                SELECT attribute, set_once FROM attribute_catalog FINAL WHERE active = 1
            ) AS catalog USING attribute
        ) AS latest
        WHERE tupleElement(chosen, 2) = 0
    ) AS attribute_rows
    GROUP BY customer_id
) AS attrs USING customer_id`

// ProfileArgs returns ProfilesOf's arguments for customers ids (at least
// one): the ids, and the ids with the anonymous ids they claimed.
func ProfileArgs(ctx context.Context, conn *chdb.Conn, ids []string) ([]any, error) {
	claimed, err := LinkedByClaims(ctx, conn, nil, ids)
	if err != nil {
		return nil, err
	}
	raw := slices.Compact(slices.Sorted(slices.Values(append(claimed, ids...))))
	return []any{clickhouse.Named("ids", chdb.Set(ids)), clickhouse.Named("raw", chdb.Set(raw))}, nil
}
