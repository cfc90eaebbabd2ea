// Package archive writes the events of a window to Parquet or Arrow IPC
// files and reads them back, so a window can be restored after Kafka's
// retention deleted it.
//
// An archive holds one row per message with every column of the events
// table, including the Kafka position the event was first consumed from:
// restoring re-ingests each row at that position, and the restored table is
// the table that was exported. Times are millisecond timestamps (UTC), the
// precision the events table keeps, so a round trip is exact. The format is
// chosen by the file name: .parquet (zstd-compressed, for keeping and for
// other tools) or .arrow (the Arrow IPC file format, for speed).
package archive
