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
