// Package mdtext escapes user-supplied text (plan names, reasons, actors,
// gate titles, constraint names, error texts) before it is placed into
// Slack mrkdwn or into markdown, so that it reads as text and can never
// ping, link, or inject HTML or table cells.
//
// It is pure (standard library only) so workflow code may use it.
package mdtext

import "strings"

var slackReplacer = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// Slack escapes s for Slack mrkdwn (message text, section and context
// blocks, response_url answers): &, < and > are the only control characters
// there, and escaping them defuses <!channel>, <@U…>, <!subteam^…> and
// <http://x|y> links. Use it for every string a user or a plan supplied.
func Slack(s string) string { return slackReplacer.Replace(s) }

// Markdown escapes s as inline markdown text (CommonMark / GitHub): the
// characters that start emphasis, code, links, images, headings,
// strikethrough or raw HTML are backslash-escaped, newlines become spaces
// (a newline could start a heading or a list), and "://" and "www." are
// broken up so GitHub does not turn a bare address into a link.
//
// An underscore between two ASCII letters or digits is left alone:
// CommonMark never emphasises inside a word, and constraint names such as
// fk_orders_customer stay readable in the raw file.
func Markdown(s string) string {
	s = oneLine(s)
	var b strings.Builder
	b.Grow(len(s) + len(s)/8)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '\\', '`', '*', '[', ']', '(', ')', '<', '>', '#', '~':
			b.WriteByte('\\')
		case '_':
			if !(i > 0 && i+1 < len(s) && wordByte(s[i-1]) && wordByte(s[i+1])) {
				b.WriteByte('\\')
			}
		case ':':
			if strings.HasPrefix(s[i:], "://") {
				b.WriteByte('\\')
			}
		case '.':
			if i >= 3 && strings.EqualFold(s[i-3:i], "www") {
				b.WriteByte('\\')
			}
		}
		b.WriteByte(c)
	}
	return b.String()
}

// TableCell escapes s for a cell of a markdown table: Markdown, plus "|",
// which would otherwise end the cell.
func TableCell(s string) string {
	return strings.ReplaceAll(Markdown(s), "|", `\|`)
}

// Code renders s as a markdown code span outside tables: literal text,
// nothing in it is markup (backslash escapes do not work there, so Markdown
// would show its backslashes). The fence is one backtick longer than the
// longest run of backticks in s; newlines become spaces.
func Code(s string) string {
	s = oneLine(s)
	run, longest := 0, 0
	for i := 0; i < len(s); i++ {
		if s[i] == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	fence := strings.Repeat("`", longest+1)
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") {
		s = " " + s + " "
	}
	return fence + s + fence
}

func oneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(s)
}

func wordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
