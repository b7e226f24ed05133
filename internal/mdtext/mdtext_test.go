package mdtext

import (
	"strings"
	"testing"
)

func TestSlack(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"fk_orders_customer", "fk_orders_customer"},
		{"<!channel>", "&lt;!channel&gt;"},
		{"<!here|here>", "&lt;!here|here&gt;"},
		{"<@U0ALICE>", "&lt;@U0ALICE&gt;"},
		{"<!subteam^S0DBA>", "&lt;!subteam^S0DBA&gt;"},
		{"<http://evil.example|click>", "&lt;http://evil.example|click&gt;"},
		{"a & b", "a &amp; b"},
		{"&lt;!channel&gt;", "&amp;lt;!channel&amp;gt;"}, // already escaped text stays text
		{"*bold* _it_ `code`", "*bold* _it_ `code`"},
	}
	for _, tc := range tests {
		if got := Slack(tc.in); got != tc.want {
			t.Errorf("Slack(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestMarkdown(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"demo plan", "demo plan"},
		{"fk_orders_customer", "fk_orders_customer"},
		{"public.orders.customer_id", "public.orders.customer_id"},
		{"_private_", `\_private\_`},
		{"a _b_ c", `a \_b\_ c`},
		{"[click](http://evil)", `\[click\]\(http\://evil\)`},
		{"![img](x)", `!\[img\]\(x\)`},
		{"<script>alert(1)</script>", `\<script\>alert\(1\)\</script\>`},
		{"<!channel>", `\<!channel\>`},
		{"*bold* **strong**", `\*bold\* \*\*strong\*\*`},
		{"`code`", "\\`code\\`"},
		{`back\slash`, `back\\slash`},
		{`\[`, `\\\[`},
		{"# heading", `\# heading`},
		{"~~gone~~", `\~\~gone\~\~`},
		{"see www.evil.example", `see www\.evil.example`},
		{"https://evil.example/x", `https\://evil.example/x`},
		{"line one\n# two\r\nthree\rfour", `line one \# two three four`},
		{"a | b", "a | b"},
		{"100% & more", "100% & more"},
	}
	for _, tc := range tests {
		if got := Markdown(tc.in); got != tc.want {
			t.Errorf("Markdown(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestTableCell(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"looks right", "looks right"},
		{"legacy | rows", `legacy \| rows`},
		{"a\nb", "a b"},
		{"[click](http://evil) <!channel> | x", `\[click\]\(http\://evil\) \<!channel\> \| x`},
		{"||", `\|\|`},
	}
	for _, tc := range tests {
		got := TableCell(tc.in)
		if got != tc.want {
			t.Errorf("TableCell(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if strings.ContainsAny(got, "\r\n") {
			t.Errorf("TableCell(%q) keeps a newline: %q", tc.in, got)
		}
	}
}

func TestCode(t *testing.T) {
	tests := []struct{ in, want string }{
		{"rollout-1", "`rollout-1`"},
		{"fk_a [x](y)", "`fk_a [x](y)`"},
		{"a`b", "``a`b``"},
		{"a``b`c", "```a``b`c```"},
		{"`x`", "`` `x` ``"},
		{"two\nlines", "`two lines`"},
	}
	for _, tc := range tests {
		if got := Code(tc.in); got != tc.want {
			t.Errorf("Code(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
