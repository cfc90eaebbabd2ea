// Package query turns a panel's typed query (a query type, optional audience,
// campaign and lane filters, the panel's time range and interval) into the
// ClickHouse statements that answer it. It is pure: no connection, no clock.
//
// Every identifier in the generated SQL (tables, columns, functions) is a
// constant of this package; every value a user chose (ids, lanes, times, the
// bucket width) travels as a bound parameter. The statements run unchanged on
// ClickHouse 18.16 and on a current LTS, which is why buckets are integer
// arithmetic on epoch milliseconds: 18.16 has no toStartOfInterval.
package query
