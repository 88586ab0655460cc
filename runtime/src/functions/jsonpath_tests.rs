//! Tests of the JSONPath evaluator.

use super::*;

fn data() -> Value {
    Value::from_json(
        serde_json::json!({
            "store": {
                "book": [
                    {"category": "reference", "author": "Nigel Rees", "title": "Sayings", "price": 8.95},
                    {"category": "fiction", "author": "Evelyn Waugh", "title": "Sword", "price": 12.99},
                    {"category": "fiction", "author": "Herman Melville", "title": "Moby Dick", "isbn": "0-553", "price": 8.99},
                    {"category": "fiction", "author": "Tolkien", "title": "LOTR", "isbn": "0-395", "price": 22.99}
                ],
                "bicycle": {"color": "red", "price": 19.95}
            },
            "a": [1, 2, 3, 4, 5]
        }),
        false,
    )
}

fn q(path: &str) -> Result<String, String> {
    JsonPath::parse(path)?.eval(&data()).map(|v| v.to_json())
}

#[test]
fn plain_paths() {
    assert_eq!(q("$.store.bicycle.color").unwrap(), r#""red""#);
    assert_eq!(q("$.store.book[0].price").unwrap(), "8.95");
    assert_eq!(q("$.store.book[-1].title").unwrap(), r#""LOTR""#);
    assert_eq!(q(r#"$["store"]["bicycle"]["price"]"#).unwrap(), "19.95");
    assert_eq!(q("$.a[10]").unwrap(), "null");
    assert_eq!(q("$.nope").unwrap_err(), "unknown key nope");
    assert!(q("$.a.b").is_err());
    assert!(q("$.store.bicycle.color.x").unwrap_err().contains("unsupported value type string"));
    assert_eq!(q("$").unwrap(), data().to_json());
}

#[test]
fn wildcards() {
    assert_eq!(q("$.a[*]").unwrap(), "[1,2,3,4,5]");
    assert_eq!(q("$.store.book[*].author").unwrap(), r#"["Nigel Rees","Evelyn Waugh","Herman Melville","Tolkien"]"#);
    assert_eq!(q("$..author").unwrap(), r#"["Nigel Rees","Evelyn Waugh","Herman Melville","Tolkien"]"#);
    assert_eq!(q("$.store.*.color").unwrap(), r#"["red"]"#);
    assert_eq!(q("$..isbn").unwrap(), r#"["0-553","0-395"]"#);
    assert_eq!(q("$.a[0,2,9]").unwrap(), "[1,3,null]");
    assert_eq!(q("$.x[*]").unwrap(), "[]");
    assert_eq!(q("$..nothing").unwrap(), "[]");
}

#[test]
fn slices() {
    assert_eq!(q("$.a[1:3]").unwrap(), "[2,3]");
    assert_eq!(q("$.a[:2]").unwrap(), "[1,2]");
    assert_eq!(q("$.a[3:]").unwrap(), "[4,5]");
    assert_eq!(q("$.a[-2:]").unwrap(), "[4,5]");
    assert_eq!(q("$.a[::2]").unwrap(), "[1,3,5]");
    assert_eq!(q("$.a[::-1]").unwrap(), "[5,4,3,2,1]");
    assert_eq!(q("$.a[4:1]").unwrap(), "[]");
    assert_eq!(q("$.a[:]").unwrap(), "[1,2,3,4,5]");
}

#[test]
fn filters() {
    assert_eq!(q("$.store.book[?(@.price < 10)].title").unwrap(), r#"["Sayings","Moby Dick"]"#);
    assert_eq!(q("$.store.book[? @.price > 20].title").unwrap(), r#"["LOTR"]"#);
    assert_eq!(q(r#"$.store.book[?(@.category == "reference")].author"#).unwrap(), r#"["Nigel Rees"]"#);
    // Missing keys make the filter fail for that element, and a string
    // that is not "true"/"false"/numeric is not a bool for gval.
    assert_eq!(q("$.store.book[?(@.isbn)].title").unwrap(), "[]");
    assert_eq!(q(r#"$.store.book[?(@.isbn != "")].title"#).unwrap(), r#"["Moby Dick","LOTR"]"#);
    assert_eq!(q(r#"$.store.book[?(@.author =~ "^T")].title"#).unwrap(), r#"["LOTR"]"#);
    assert_eq!(q("$.a[?(@ > 2 && @ < 5)]").unwrap(), "[3,4]");
    assert_eq!(q("$.a[?(@ in [1, 5])]").unwrap(), "[1,5]");
    assert_eq!(q("$.a[?(@ % 2 == 0)]").unwrap(), "[2,4]");
    assert_eq!(q("$..book[?(@.price > $.store.bicycle.price)].title").unwrap(), r#"["LOTR"]"#);
}

#[test]
fn expressions() {
    assert_eq!(q("$.a[0] + 1").unwrap(), "2");
    assert_eq!(q(r#""x" + $.store.bicycle.color"#).unwrap(), r#""xred""#);
    assert_eq!(q("1 + 2 * 3").unwrap(), "7");
    assert_eq!(q("2 ** 3 ** 2").unwrap(), "64");
    assert_eq!(q("$.a[0] == 1 ? 'y' : 'n'").unwrap(), r#""y""#);
    assert_eq!(q(r#""1" == 1"#).unwrap(), "true");
    assert_eq!(q("store.bicycle.color").unwrap(), r#""red""#);
}

/// Cases from PaesslerAG/jsonpath's own tests (`reorder` ones sorted).
#[test]
fn upstream_cases() {
    let run = |path: &str, data: &str| -> Result<String, String> {
        let v = Value::from_json(serde_json::from_str(data).map_err(|e| e.to_string())?, false);
        JsonPath::parse(path)?.eval(&v).map(|v| v.to_json())
    };
    let sorted = |json: String| -> Vec<String> {
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let mut items: Vec<String> = v.as_array().unwrap().iter().map(|x| x.to_string()).collect();
        items.sort();
        items
    };
    assert_eq!(run("$", r#""hey""#).unwrap(), r#""hey""#);
    assert_eq!(run("$[-2]", "[7]").unwrap(), "null");
    assert_eq!(run("$[1]", r#"{"1":"aa"}"#).unwrap(), r#""aa""#);
    assert!(run("$[1]", r#"{"2":"aa"}"#).is_err());
    assert_eq!(run("$[2:6].a", r#"{"3":{"a":"aa"}}"#).unwrap(), "[]");
    assert_eq!(run("$[2:6:2].a", r#"[{"a":"xx"},41,{"a":"b1"},{"a":"b2"},55,{"a":"b3"}]"#).unwrap(), r#"["b1"]"#);
    assert_eq!(run("$.a[@.max]", r#"{"a":{"max":"3a", "3a":"aa"}}"#).unwrap(), r#""aa""#);
    assert_eq!(run("$[1, -5, 3].a", r#"[55,{"a":"1a"},70,{"a":"bb"}]"#).unwrap(), r#"["1a","bb"]"#);
    assert_eq!(run("$[1, 3].*", r#"[55,{"a":"1a"},70,{"b":"bb"}]"#).unwrap(), r#"["1a","bb"]"#);
    assert!(JsonPath::parse("$[3].").is_err());
    assert!(JsonPath::parse("$[3,5:1].").is_err());
    let mapper = r#"{"a" : {"x" : 1}, "b" : [{"x" : 2}, {"y" : 3}], "x" : 4}"#;
    assert_eq!(sorted(run("$..x", mapper).unwrap()), vec!["1", "2", "4"]);
    assert_eq!(sorted(run(r#"$..["x", "a"]"#, mapper).unwrap()), vec!["1", "2", "4", r#"{"x":1}"#]);
    let kv = r#"[{"key": "x","value":"a"},{"key": "y","value":"b"}]"#;
    assert_eq!(run(r#"$[?(@.key=="x")].value"#, kv).unwrap(), r#"["a"]"#);
    assert_eq!(run(r#"$.*.value(@=="a")"#, kv).unwrap(), "[true,false]");
    let all = sorted(run(r#"$..(@=="a")"#, kv).unwrap());
    assert_eq!(all.iter().filter(|x| *x == "true").count(), 1);
    assert_eq!(all.len(), 7);
    let sel = r#"{"abc":{"d":["1","1"],"f":{"a":{"x":"1"},"b":{"x":"1"},"c":{"x":"xx"}}}}"#;
    assert_eq!(sorted(run(r#"$.abc.f..["x"](@ == "1")"#, sel).unwrap()), vec!["false", "true", "true"]);
    assert_eq!(run("$.a == 1.23", r#"{"a":1.23}"#).unwrap(), "true");
    assert_eq!(run(r#"$..[?@.a=="aa"]"#, r#"{"x":{"a":"aa"},"y":{"a":"b"}}"#).unwrap(), r#"[{"a":"aa"}]"#);
}

#[test]
fn parse_errors() {
    assert!(JsonPath::parse("$.").is_err());
    assert!(JsonPath::parse("$[").is_err());
    assert!(JsonPath::parse("$.a[1,2:3]").is_err());
    assert!(JsonPath::parse("$['ab']").is_err());
    assert!(JsonPath::parse("$['a']").is_ok());
    assert!(JsonPath::parse("$.a)").is_err());
    assert!(JsonPath::parse(&"(".repeat(1000)).is_err());
    assert!(JsonPath::parse(&"-".repeat(100_000)).is_err());
    assert!(JsonPath::parse(&"1+".repeat(100_000)).is_err());
}
