package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/tideline-dev/tideline/ingest"
)

// FormatTag is the schema metadata value that marks a tideline archive.
const FormatTag = "tideline-events/1"

// Metadata keys of an archive's schema.
const (
	MetaFormat = "tideline.format"
	MetaFrom   = "tideline.window_from"
	MetaTo     = "tideline.window_to"
)

// ErrFormat is a file that is not a tideline archive.
var ErrFormat = errors.New("not a tideline events archive")

// Row is one archived event: the columns of the events table.
type Row struct {
	MessageID, Type, CustomerID, UserID, AnonymousID, Event, Properties, Traits string
	EventTimeMs, SentAtMs, ReceivedAtMs, IngestTimeMs                           uint64
	Source, Lane                                                                string
	Topic                                                                       string
	Partition                                                                   int32
	Offset                                                                      int64
	// PreviousID (alias), GroupID (group) and Context (the context object
	// as JSON, '' when absent) are what the collector received; Ctx are the
	// typed context columns the loader derived from them.
	PreviousID, GroupID, Context string
	Ctx                          ingest.ContextColumns
}

// contextFields are the archive's columns of the group and alias calls
// and of the message's context, after the original layout: an archive
// written before them reads ” in each, and stays a valid source.
var contextFields = []struct {
	name string
	col  func(*Row) *string
}{
	{"previous_id", func(r *Row) *string { return &r.PreviousID }},
	{"group_id", func(r *Row) *string { return &r.GroupID }},
	{"context", func(r *Row) *string { return &r.Context }},
	{"context_campaign_source", func(r *Row) *string { return &r.Ctx.CampaignSource }},
	{"context_campaign_medium", func(r *Row) *string { return &r.Ctx.CampaignMedium }},
	{"context_campaign_name", func(r *Row) *string { return &r.Ctx.CampaignName }},
	{"context_campaign_term", func(r *Row) *string { return &r.Ctx.CampaignTerm }},
	{"context_campaign_content", func(r *Row) *string { return &r.Ctx.CampaignContent }},
	{"context_page_url", func(r *Row) *string { return &r.Ctx.PageURL }},
	{"context_page_path", func(r *Row) *string { return &r.Ctx.PagePath }},
	{"context_page_referrer", func(r *Row) *string { return &r.Ctx.PageReferrer }},
	{"context_page_title", func(r *Row) *string { return &r.Ctx.PageTitle }},
	{"context_ip", func(r *Row) *string { return &r.Ctx.IP }},
	{"context_user_agent", func(r *Row) *string { return &r.Ctx.UserAgent }},
	{"context_locale", func(r *Row) *string { return &r.Ctx.Locale }},
	{"context_timezone", func(r *Row) *string { return &r.Ctx.Timezone }},
	{"context_library_name", func(r *Row) *string { return &r.Ctx.LibraryName }},
	{"context_library_version", func(r *Row) *string { return &r.Ctx.LibraryVersion }},
}

var tsMs = &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}

// fields is the archive layout; the column names are the events table's,
// with *_ms times as timestamps. The first baseFields are required of an
// archive; contextFields follow.
var fields = append([]arrow.Field{
	{Name: "message_id", Type: arrow.BinaryTypes.String},
	{Name: "type", Type: arrow.BinaryTypes.String},
	{Name: "customer_id", Type: arrow.BinaryTypes.String},
	{Name: "user_id", Type: arrow.BinaryTypes.String},
	{Name: "anonymous_id", Type: arrow.BinaryTypes.String},
	{Name: "event", Type: arrow.BinaryTypes.String},
	{Name: "properties", Type: arrow.BinaryTypes.String},
	{Name: "traits", Type: arrow.BinaryTypes.String},
	{Name: "event_time", Type: tsMs},
	{Name: "sent_at", Type: tsMs, Nullable: true},
	{Name: "received_at", Type: tsMs},
	{Name: "ingest_time", Type: tsMs},
	{Name: "source", Type: arrow.BinaryTypes.String},
	{Name: "lane", Type: arrow.BinaryTypes.String},
	{Name: "kafka_topic", Type: arrow.BinaryTypes.String},
	{Name: "kafka_partition", Type: arrow.PrimitiveTypes.Int32},
	{Name: "kafka_offset", Type: arrow.PrimitiveTypes.Int64},
}, contextArrowFields()...)

const baseFields = 17

func contextArrowFields() []arrow.Field {
	out := make([]arrow.Field, len(contextFields))
	for i, c := range contextFields {
		out[i] = arrow.Field{Name: c.name, Type: arrow.BinaryTypes.String}
	}
	return out
}

// Schema returns the archive schema for a window.
func Schema(from, to time.Time) *arrow.Schema {
	md := arrow.NewMetadata(
		[]string{MetaFormat, MetaFrom, MetaTo},
		[]string{FormatTag, from.UTC().Format(time.RFC3339Nano), to.UTC().Format(time.RFC3339Nano)},
	)
	return arrow.NewSchema(fields, &md)
}

// Kind is the file format.
type Kind int

// File formats.
const (
	Parquet Kind = iota
	ArrowIPC
)

func (k Kind) String() string {
	if k == ArrowIPC {
		return "Arrow IPC"
	}
	return "Parquet"
}

// KindOf picks the format from the file name.
func KindOf(path string) (Kind, error) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".parquet", ".pq":
		return Parquet, nil
	case ".arrow", ".arrows", ".ipc", ".feather":
		return ArrowIPC, nil
	}
	return 0, fmt.Errorf("archive %s: name it .parquet (Parquet) or .arrow (Arrow IPC)", path)
}

// rowsPerBatch bounds memory: one Arrow record (and Parquet row group) each.
const rowsPerBatch = 128 << 10

// Writer writes rows to an archive file.
type Writer struct {
	path   string
	f      *os.File
	schema *arrow.Schema
	b      *array.RecordBuilder
	pq     *pqarrow.FileWriter
	ipc    *ipc.FileWriter
	n      int64
}

// Create starts an archive at path for the window [from, to). The file is
// written under a temporary name and renamed by Close, so a failed export
// never leaves a truncated archive behind.
func Create(path string, from, to time.Time) (*Writer, error) {
	kind, err := KindOf(path)
	if err != nil {
		return nil, err
	}
	f, err := os.Create(path + ".partial")
	if err != nil {
		return nil, fmt.Errorf("create archive: %w", err)
	}
	w := &Writer{path: path, f: f, schema: Schema(from, to)}
	switch kind {
	case Parquet:
		props := parquet.NewWriterProperties(
			parquet.WithCompression(compress.Codecs.Zstd),
			parquet.WithMaxRowGroupLength(rowsPerBatch),
			parquet.WithCreatedBy("tideline export"),
		)
		w.pq, err = pqarrow.NewFileWriter(w.schema, f, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	case ArrowIPC:
		w.ipc, err = ipc.NewFileWriter(f, ipc.WithSchema(w.schema), ipc.WithZstd())
	}
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("start %s archive %s: %w", kind, path, err)
	}
	w.b = array.NewRecordBuilder(memory.DefaultAllocator, w.schema)
	return w, nil
}

// Rows is the number of rows written so far.
func (w *Writer) Rows() int64 { return w.n }

// Write appends rows.
func (w *Writer) Write(rows []Row) error {
	for len(rows) > 0 {
		n := min(len(rows), rowsPerBatch)
		w.append(rows[:n])
		if err := w.flush(); err != nil {
			return err
		}
		rows = rows[n:]
	}
	return nil
}

func (w *Writer) append(rows []Row) {
	str := func(i int) *array.StringBuilder { return w.b.Field(i).(*array.StringBuilder) }
	ts := func(i int) *array.TimestampBuilder { return w.b.Field(i).(*array.TimestampBuilder) }
	for _, r := range rows {
		str(0).Append(r.MessageID)
		str(1).Append(r.Type)
		str(2).Append(r.CustomerID)
		str(3).Append(r.UserID)
		str(4).Append(r.AnonymousID)
		str(5).Append(r.Event)
		str(6).Append(r.Properties)
		str(7).Append(r.Traits)
		ts(8).Append(arrow.Timestamp(r.EventTimeMs))
		if r.SentAtMs == 0 {
			ts(9).AppendNull()
		} else {
			ts(9).Append(arrow.Timestamp(r.SentAtMs))
		}
		ts(10).Append(arrow.Timestamp(r.ReceivedAtMs))
		ts(11).Append(arrow.Timestamp(r.IngestTimeMs))
		str(12).Append(r.Source)
		str(13).Append(r.Lane)
		str(14).Append(r.Topic)
		w.b.Field(15).(*array.Int32Builder).Append(r.Partition)
		w.b.Field(16).(*array.Int64Builder).Append(r.Offset)
		for i, c := range contextFields {
			str(baseFields + i).Append(*c.col(&r))
		}
	}
	w.n += int64(len(rows))
}

func (w *Writer) flush() error {
	rec := w.b.NewRecordBatch()
	defer rec.Release()
	if rec.NumRows() == 0 {
		return nil
	}
	var err error
	if w.pq != nil {
		err = w.pq.Write(rec)
	} else {
		err = w.ipc.Write(rec)
	}
	if err != nil {
		return fmt.Errorf("write archive %s: %w", w.path, err)
	}
	return nil
}

// Close finishes the file and moves it into place.
func (w *Writer) Close() error {
	defer w.b.Release()
	var err error
	if w.pq != nil {
		err = w.pq.Close() // closes the file too
	} else {
		err = w.ipc.Close()
		err = errors.Join(err, w.f.Sync(), w.f.Close())
	}
	if err != nil {
		os.Remove(w.f.Name())
		return fmt.Errorf("finish archive %s: %w", w.path, err)
	}
	if err := os.Rename(w.f.Name(), w.path); err != nil {
		return fmt.Errorf("finish archive %s: %w", w.path, err)
	}
	return nil
}

// Abort discards the file.
func (w *Writer) Abort() {
	if w.pq != nil {
		_ = w.pq.Close()
	} else {
		_ = w.ipc.Close()
		_ = w.f.Close()
	}
	w.b.Release()
	_ = os.Remove(w.f.Name())
}

// Reader reads an archive's rows in file order.
type Reader struct {
	path    string
	f       *os.File
	meta    arrow.Metadata
	pq      *file.Reader
	rr      pqarrow.RecordReader
	ipc     *ipc.FileReader
	next    int // next IPC record
	columns []int
}

// Open opens an archive, recognising the format by its magic bytes.
func Open(ctx context.Context, path string) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open archive: %w", err)
	}
	r := &Reader{path: path, f: f}
	magic := make([]byte, 6)
	if _, err := io.ReadFull(f, magic); err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: %s is too short", ErrFormat, path)
	}
	var schema *arrow.Schema
	switch {
	case string(magic[:4]) == "PAR1":
		if r.pq, err = file.NewParquetReader(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("%w: %s: %v", ErrFormat, path, err)
		}
		fr, err := pqarrow.NewFileReader(r.pq, pqarrow.ArrowReadProperties{BatchSize: rowsPerBatch}, memory.DefaultAllocator)
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("read archive %s: %w", path, err)
		}
		if schema, err = fr.Schema(); err != nil {
			r.Close()
			return nil, fmt.Errorf("read archive %s: %w", path, err)
		}
		if r.rr, err = fr.GetRecordReader(ctx, nil, nil); err != nil {
			r.Close()
			return nil, fmt.Errorf("read archive %s: %w", path, err)
		}
	case string(magic) == "ARROW1":
		if r.ipc, err = ipc.NewFileReader(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("%w: %s: %v", ErrFormat, path, err)
		}
		schema = r.ipc.Schema()
	default:
		f.Close()
		return nil, fmt.Errorf("%w: %s is neither Parquet nor an Arrow IPC file", ErrFormat, path)
	}
	r.meta = schema.Metadata()
	if v, _ := r.Meta(MetaFormat); v != FormatTag {
		r.Close()
		return nil, fmt.Errorf("%w: %s has no %s=%s metadata (export it with tideline export)", ErrFormat, path, MetaFormat, FormatTag)
	}
	for i, want := range fields {
		idx := schema.FieldIndices(want.Name)
		if len(idx) == 0 && i >= baseFields {
			// An archive exported before the context columns.
			r.columns = append(r.columns, -1)
			continue
		}
		if len(idx) != 1 || !arrow.TypeEqual(schema.Field(idx[0]).Type, want.Type) {
			r.Close()
			return nil, fmt.Errorf("%w: %s: column %s is missing or not %s", ErrFormat, path, want.Name, want.Type)
		}
		r.columns = append(r.columns, idx[0])
	}
	return r, nil
}

// Meta returns a schema metadata value.
func (r *Reader) Meta(key string) (string, bool) {
	i := r.meta.FindKey(key)
	if i < 0 {
		return "", false
	}
	return r.meta.Values()[i], true
}

// Window returns the window the archive was exported for.
func (r *Reader) Window() (from, to time.Time, err error) {
	f, _ := r.Meta(MetaFrom)
	t, _ := r.Meta(MetaTo)
	if from, err = time.Parse(time.RFC3339Nano, f); err == nil {
		to, err = time.Parse(time.RFC3339Nano, t)
	}
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("%w: %s has no valid window metadata", ErrFormat, r.path)
	}
	return from, to, nil
}

// Next returns the next rows, or io.EOF after the last.
func (r *Reader) Next() ([]Row, error) {
	var rec arrow.RecordBatch
	if r.rr != nil {
		if !r.rr.Next() {
			if err := r.rr.Err(); err != nil && !errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("read archive %s: %w", r.path, err)
			}
			return nil, io.EOF
		}
		rec = r.rr.RecordBatch()
	} else {
		if r.next >= r.ipc.NumRecords() {
			return nil, io.EOF
		}
		var err error
		if rec, err = r.ipc.RecordBatch(r.next); err != nil {
			return nil, fmt.Errorf("read archive %s: %w", r.path, err)
		}
		r.next++
	}
	return r.rows(rec), nil
}

func (r *Reader) rows(rec arrow.RecordBatch) []Row {
	col := func(i int) arrow.Array { return rec.Column(r.columns[i]) }
	str := func(i int) *array.String { return col(i).(*array.String) }
	ts := func(i int) *array.Timestamp { return col(i).(*array.Timestamp) }
	n := int(rec.NumRows())
	out := make([]Row, n)
	part := col(15).(*array.Int32)
	off := col(16).(*array.Int64)
	for j := 0; j < n; j++ {
		row := &out[j]
		row.MessageID, row.Type, row.CustomerID = str(0).Value(j), str(1).Value(j), str(2).Value(j)
		row.UserID, row.AnonymousID, row.Event = str(3).Value(j), str(4).Value(j), str(5).Value(j)
		row.Properties, row.Traits = str(6).Value(j), str(7).Value(j)
		row.EventTimeMs = uint64(ts(8).Value(j))
		if ts(9).IsValid(j) {
			row.SentAtMs = uint64(ts(9).Value(j))
		}
		row.ReceivedAtMs, row.IngestTimeMs = uint64(ts(10).Value(j)), uint64(ts(11).Value(j))
		row.Source, row.Lane, row.Topic = str(12).Value(j), str(13).Value(j), str(14).Value(j)
		row.Partition, row.Offset = part.Value(j), off.Value(j)
	}
	for i, c := range contextFields {
		if r.columns[baseFields+i] < 0 {
			continue
		}
		s := str(baseFields + i)
		for j := range out {
			*c.col(&out[j]) = s.Value(j)
		}
	}
	return out
}

// Close releases the file.
func (r *Reader) Close() error {
	if r.rr != nil {
		r.rr.Release()
	}
	if r.ipc != nil {
		_ = r.ipc.Close()
	}
	if r.pq != nil {
		return r.pq.Close()
	}
	return r.f.Close()
}
