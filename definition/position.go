package definition

import "github.com/goccy/go-yaml/ast"

// Position is where n starts: for a mapping, its first key (the parser's
// own token for a mapping is its colon). It is 0, 0 for a nil node.
func Position(n ast.Node) (line, col int) {
	switch m := Unwrap(n).(type) {
	case nil:
		return 0, 0
	case *ast.MappingNode:
		if len(m.Values) > 0 {
			n = m.Values[0].Key
		}
	case *ast.MappingValueNode:
		n = m.Key
	}
	if n == nil {
		return 0, 0
	}
	if tok := n.GetToken(); tok != nil && tok.Position != nil {
		return tok.Position.Line, tok.Position.Column
	}
	return 0, 0
}

// Unwrap returns the node an anchor or a tag stands for.
func Unwrap(n ast.Node) ast.Node {
	for {
		switch t := n.(type) {
		case *ast.AnchorNode:
			n = t.Value
		case *ast.TagNode:
			n = t.Value
		default:
			return n
		}
	}
}

// Entries are the key-value pairs of a mapping node, in order; nil when n
// is not a mapping.
func Entries(n ast.Node) []*ast.MappingValueNode {
	switch m := Unwrap(n).(type) {
	case *ast.MappingNode:
		return m.Values
	case *ast.MappingValueNode:
		return []*ast.MappingValueNode{m}
	}
	return nil
}

// Key is a mapping key's text.
func Key(k ast.MapKeyNode) string {
	if s, ok := Unwrap(k).(*ast.StringNode); ok {
		return s.Value
	}
	if tok := k.GetToken(); tok != nil {
		return tok.Value
	}
	return k.String()
}

// Find returns the pair at path (a key per level of nested mappings), or
// nil when a key is missing.
func Find(n ast.Node, path ...string) *ast.MappingValueNode {
	var found *ast.MappingValueNode
	for _, key := range path {
		found = nil
		for _, mv := range Entries(n) {
			if Key(mv.Key) == key {
				found = mv
				break
			}
		}
		if found == nil {
			return nil
		}
		n = found.Value
	}
	return found
}
