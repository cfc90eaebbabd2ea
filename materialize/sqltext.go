package materialize

import (
	"strconv"
	"strings"
)

// quote writes s as a ClickHouse string literal. Inside single quotes only
// the backslash and the quote itself are special, so escaping those two
// makes any text a literal; definitions reject control characters before
// they get here. This is the one place user text enters generated SQL.
func quote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\', '\'':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
	return b.String()
}

// number writes a finite float as a ClickHouse numeric literal.
func number(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// The JSON helpers read one top-level key of a JSON object column with the
// visitParam functions, the JSON functions ClickHouse 18.16 has. They find a
// key at any depth and expect compact JSON; the collector stores traits and
// properties compacted (encoding/json re-encodes them), and doc.go states the
// limits.

func jsonRaw(col, key string) string {
	return "visitParamExtractRaw(" + col + ", " + quote(key) + ")"
}

// jsonValue is the key's value as text: a JSON string unescaped, anything
// else (numbers, true, false, null, objects) as written.
func jsonValue(col, key string) string {
	raw := jsonRaw(col, key)
	return "if(substring(" + raw + ", 1, 1) = '\"', visitParamExtractString(" + col + ", " + quote(key) + "), " + raw + ")"
}

// jsonPresent is 1 when the key is there and not null.
func jsonPresent(col, key string) string {
	return "(visitParamHas(" + col + ", " + quote(key) + ") AND " + jsonRaw(col, key) + " != 'null')"
}

func jsonIsNull(col, key string) string {
	return "toUInt8(" + jsonRaw(col, key) + " = 'null')"
}

// numeric compares a text expression as a number; text that is not a
// number compares false.
func numeric(expr, op string, v float64) string {
	return "(isNotNull(toFloat64OrNull(" + expr + ")) AND toFloat64OrZero(" + expr + ") " + op + " " + number(v) + ")"
}

// predicateSQL renders pred over a value expression (text) and a presence
// expression (UInt8).
func predicateSQL(pred *Predicate, value, present string) string {
	switch pred.Op {
	case OpExists:
		if pred.Exists {
			return present
		}
		return "NOT " + present
	case OpNotEquals:
		return "NOT (" + predicateSQL(&Predicate{Op: OpEquals, Values: pred.Values}, value, present) + ")"
	case OpNotIn:
		return "NOT (" + predicateSQL(&Predicate{Op: OpIn, Values: pred.Values}, value, present) + ")"
	case OpLt, OpLte, OpGt, OpGte:
		op := map[Op]string{OpLt: "<", OpLte: "<=", OpGt: ">", OpGte: ">="}[pred.Op]
		return "(" + present + " AND " + numeric(value, op, pred.Values[0].Num) + ")"
	case OpEquals:
		return "(" + present + " AND " + equalsOne(pred.Values[0], value) + ")"
	default: // OpIn
		var texts, nums []string
		for _, v := range pred.Values {
			switch v.Kind {
			case ValueNumber:
				nums = append(nums, number(v.Num))
			case ValueBool:
				texts = append(texts, quote(strconv.FormatBool(v.Bool)))
			default:
				texts = append(texts, quote(v.Str))
			}
		}
		var parts []string
		if len(texts) > 0 {
			parts = append(parts, value+" IN ("+strings.Join(texts, ", ")+")")
		}
		if len(nums) > 0 {
			parts = append(parts, "(isNotNull(toFloat64OrNull("+value+")) AND toFloat64OrZero("+value+") IN ("+strings.Join(nums, ", ")+"))")
		}
		in := strings.Join(parts, " OR ")
		if len(parts) > 1 {
			in = "(" + in + ")"
		}
		return "(" + present + " AND " + in + ")"
	}
}

func equalsOne(v Value, value string) string {
	switch v.Kind {
	case ValueNumber:
		return numeric(value, "=", v.Num)
	case ValueBool:
		return value + " = " + quote(strconv.FormatBool(v.Bool))
	default:
		return value + " = " + quote(v.Str)
	}
}
