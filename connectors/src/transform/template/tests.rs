//! Template cases, mostly from eKuiper's data template documentation and
//! transform tests.

use weir_runtime::Value;

use super::{render_topic, Template, TemplateError};

fn data(json: &str) -> Value {
    Value::from_json(serde_json::from_str(json).unwrap(), false)
}

fn render(t: &str, json: &str) -> String {
    Template::parse(t).unwrap_or_else(|e| panic!("{t}: {e}")).render(&data(json)).unwrap_or_else(|e| panic!("{t}: {e}"))
}

#[test]
fn fields_and_go_number_printing() {
    assert_eq!(render(r#"{"ab":{{.a}},"bb":{{.b}}}"#, r#"{"a":1,"b":2}"#), r#"{"ab":1,"bb":2}"#);
    assert_eq!(render("{{.x}} {{.y}} {{.z}}", r#"{"x":1000000,"y":0.5,"z":123456}"#), "1e+06 0.5 123456");
    assert_eq!(render("{{.a.b}}", r#"{"a":{"b":"deep"}}"#), "deep");
    assert_eq!(render(r#"{"ab":{{.a}}}"#, r#"{"data":1}"#), r#"{"ab":<no value>}"#);
    assert_eq!(render("{{.a}}", r#"{"a":null}"#), "<nil>");
    assert_eq!(render("{{.}}", r#"{"a":1,"b":[1,"x"]}"#), "map[a:1 b:[1 x]]");
}

#[test]
fn json_and_index_over_an_emission() {
    let rows = r#"[{"a":1,"b":"x<y"},{"a":2.5}]"#;
    assert_eq!(render("{{json .}}", rows), r#"[{"a":1,"b":"x\u003cy"},{"a":2.5}]"#);
    assert_eq!(render("{{toJson (index . 1)}}", rows), r#"{"a":2.5}"#);
    assert_eq!(render(r#"{{index . 0 "a"}}"#, rows), "1");
    assert_eq!(render(r#"{{(index . 1).a}}"#, rows), "2.5");
    assert_eq!(render("{{len .}}", rows), "2");
    assert!(matches!(
        Template::parse(r#"{{index . 3 "a"}}"#).unwrap().render(&data(rows)),
        Err(TemplateError::Exec(_))
    ));
}

#[test]
fn range_if_else_from_the_docs() {
    // eKuiper docs: "{{range .}}{{if gt .temperature 30}}..." over a window.
    let rows = r#"[{"id":1,"temperature":31.5},{"id":2,"temperature":20},{"id":3,"temperature":40}]"#;
    let t = r#"{{range .}}{{if gt .temperature 30}}hot {{.id}};{{else}}ok {{.id}};{{end}}{{end}}"#;
    assert_eq!(render(t, rows), "hot 1;ok 2;hot 3;");
    let t = r#"{{range $i, $e := .}}{{if $i}},{{end}}{{$e.id}}{{end}}"#;
    assert_eq!(render(t, rows), "1,2,3");
    let t = r#"{{if eq .s "a"}}A{{else if eq .s "b"}}B{{else}}other{{end}}"#;
    assert_eq!(render(t, r#"{"s":"b"}"#), "B");
    assert_eq!(render(t, r#"{"s":"z"}"#), "other");
    assert_eq!(render("{{if and .a (not .b)}}y{{else}}n{{end}}", r#"{"a":1,"b":false}"#), "y");
    assert_eq!(render("{{if or .x .y}}y{{else}}n{{end}}", r#"{"y":""}"#), "n");
    assert_eq!(render("{{range .}}x{{else}}empty{{end}}", "[]"), "empty");
    assert_eq!(render("{{with .a}}{{.b}}{{end}}", r#"{"a":{"b":7}}"#), "7");
    assert_eq!(render("{{range .}}{{if eq . 2}}{{break}}{{end}}{{.}}{{end}}", "[1,2,3]"), "1");
    assert_eq!(render("{{ne .a 1}} {{le .a 1}} {{ge .a 2}} {{lt .a 1.5}}", r#"{"a":1}"#), "false true false true");
}

#[test]
fn printf_and_functions() {
    assert_eq!(render(r#"{{printf "%.2f" .x}}"#, r#"{"x":3.14159}"#), "3.14");
    assert_eq!(render(r#"{{printf "%d-%s-%v" .n .s .f}}"#, r#"{"n":42,"s":"ab","f":1e6}"#), "42-ab-1e+06");
    assert_eq!(render(r#"{{printf "%5.1f|%-4d|%05d" .x .n .n}}"#, r#"{"x":2.25,"n":7}"#), "  2.2|7   |00007");
    assert_eq!(
        render(r#"{{printf "%e %g %q %t %x" .x .x .s .b .i}}"#, r#"{"x":1234.5,"s":"a\"b","b":true,"i":255}"#),
        r#"1.234500e+03 1234.5 "a\"b" true ff"#
    );
    assert_eq!(render(r#"{{printf "%d"}}"#, "{}"), "%!d(MISSING)");
    assert_eq!(render("{{base64 .s}} {{base64 .n}} {{b64enc .s}}", r#"{"s":"hi","n":1.5}"#), "aGk= MS41 aGk=");
    assert_eq!(render("{{base64 .}}", r#"{"a":1}"#), "eyJhIjoxfQ==");
    assert_eq!(render("{{.s | upper}} {{lower .s}} {{.s | printf \"<%s>\"}}", r#"{"s":"Ab"}"#), "AB ab <Ab>");
    assert_eq!(render(r#"{{default "none" .missing}} {{add 1 2}} {{round .x 1}}"#, r#"{"x":2.345}"#), "none 3 2.3");
    assert_eq!(render(r#"{{$t := .t}}{{$t}}|{{$.t}}"#, r#"{"t":5}"#), "5|5");
}

#[test]
fn trimming_comments_and_literals() {
    assert_eq!(render("a  {{- .x -}}  b", r#"{"x":1}"#), "a1b");
    assert_eq!(render("{{/* a comment */}}x", "{}"), "x");
    assert_eq!(render("{{`raw {{`}} {{\"q\\n\"}}", "{}"), "raw {{ q\n");
    assert_eq!(render("{{-3}}", "{}"), "-3");
}

#[test]
fn parse_errors_are_reported_with_their_line() {
    for (t, what) in [
        ("{{.a", "unclosed action"),
        ("{{if .a}}x", "without {{end}}"),
        ("{{end}}", "unexpected {{end}}"),
        ("a\n{{nosuch .a}}", "function \"nosuch\" not defined"),
        ("{{template \"x\"}}", "not supported"),
        ("{{\"abc}}", "unclosed action"),
    ] {
        match Template::parse(t) {
            Err(e @ TemplateError::Parse { .. }) => {
                assert!(e.to_string().contains(what), "{t}: {e}")
            }
            other => panic!("{t}: {other:?}"),
        }
    }
    assert!(Template::parse("a\n{{nosuch .a}}").unwrap_err().to_string().starts_with("template: 2:"));
}

#[test]
fn dynamic_properties() {
    let row = data(r#"{"t":"furnace/1","n":3}"#);
    assert_eq!(render_topic("plant/{{.t}}/n{{.n}}", &row).unwrap(), "plant/furnace/1/n3");
    assert_eq!(render_topic("static/topic", &row).unwrap(), "static/topic");
    let rows = data(r#"[{"a":1}]"#);
    assert_eq!(render_topic(r#"t_{{index . 0 "a"}}_t"#, &rows).unwrap(), "t_1_t");
    assert!(Template::parse("x").unwrap().is_constant());
}
