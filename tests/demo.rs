//! `weir demo` (issue 4 item 5): one command, nothing but the binary, and
//! every rule's live output on the terminal.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::weir_bin;

/// Result lines of `rule`: the elapsed time, then the rule
/// (`   1.2s  alarm     furnace-2  OVERHEAT ...`).
fn lines_of<'a>(stdout: &'a str, rule: &str) -> Vec<&'a str> {
    stdout
        .lines()
        .filter(|l| {
            let mut cols = l.split_whitespace();
            let timed = cols.next().and_then(|t| t.strip_suffix('s')).is_some_and(|t| t.parse::<f64>().is_ok());
            timed && cols.next() == Some(rule)
        })
        .collect()
}

#[test]
fn demo_shows_all_four_rules_and_exits_zero() {
    let started = Instant::now();
    let child = Command::new(weir_bin())
        // Port 0: never collide with a `weir serve` on 9081.
        .args(["demo", "--duration", "5", "--api", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("weir demo starts");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = rx.recv_timeout(Duration::from_secs(60)).expect("weir demo --duration 5 ends").unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}", out.status);
    assert!(started.elapsed() >= Duration::from_secs(5), "stopped early:\n{stdout}");

    // The setup is described, with the REST API's address.
    assert!(stdout.contains("embedded rumqttd"), "{stdout}");
    let api = stdout.lines().find(|l| l.contains("REST API")).unwrap_or_default();
    assert!(api.trim_start().starts_with("weir     http://127.0.0.1:"), "{stdout}");

    // Device twin: 2 s averages per furnace from the output topic.
    let twin = lines_of(&stdout, "twin");
    assert!(!twin.is_empty(), "no device-twin output:\n{stdout}");
    assert!(twin.iter().all(|l| l.contains("furnace-") && l.contains("°C") && l.contains("avg of")), "{twin:?}");
    // Alarm: furnace 2's scheduled overheat.
    let alarm = lines_of(&stdout, "alarm");
    assert!(alarm.iter().any(|l| l.contains("furnace-2") && l.contains("OVERHEAT")), "{stdout}");
    // Control: set points written back through the neuron sink.
    let control = lines_of(&stdout, "control");
    assert!(!control.is_empty(), "no set-point writes:\n{stdout}");
    assert!(control.iter().all(|l| l.contains("gas_flow_sp") && l.contains("POST /api/v2/write")), "{control:?}");
    assert!(control.iter().any(|l| l.contains("furnace-2")), "{stdout}");
    // Advisor: the ONNX model's recommendation per furnace, to Neuron.
    let advisor = lines_of(&stdout, "advisor");
    assert!(!advisor.is_empty(), "no model recommendations:\n{stdout}");
    assert!(advisor.iter().all(|l| l.contains("gas_flow_ai") && l.contains("m³/h")), "{advisor:?}");

    // Progress: every rule's events in and out, read from its status.
    let progress = stdout.lines().rfind(|l| l.contains(" │ twin ")).unwrap_or_else(|| panic!("{stdout}"));
    for rule in ["line", "twin", "alarm", "control", "advisor"] {
        assert!(progress.contains(&format!(" {rule} ")), "{progress}");
    }
    assert_eq!(progress.matches('→').count(), 4, "{progress}");
    // The summary names every rule and says it stopped by itself.
    assert!(stdout.contains("weir demo: stopped after"), "{stdout}");
    assert!(!stdout.contains("(interrupted)"), "{stdout}");
    for rule in ["twin", "alarm", "control", "advisor"] {
        assert!(stdout.lines().any(|l| l.trim_start().starts_with(&format!("rule {rule} "))), "{stdout}");
    }
}

#[test]
fn demo_rejects_bad_options() {
    for args in [&["demo", "--rate", "0"][..], &["demo", "--duration", "-1"], &["demo", "--furnaces", "0"]] {
        let out = Command::new(weir_bin()).args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(!out.stderr.is_empty(), "{args:?}: no message");
    }
}

#[test]
fn demo_stops_cleanly_on_ctrl_c() {
    use std::io::BufRead as _;
    let mut child = Command::new(weir_bin())
        .args(["demo", "--api", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("weir demo starts");
    let dir = std::env::temp_dir().join(format!("weir-demo-{}", child.id()));
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // Running: the first result or progress line.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| lines_of(l, "twin").len() + l.matches(" │ twin ").count() > 0) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => seen.push(l),
            Err(_) => panic!("no output from the rules:\n{}", seen.join("\n")),
        }
    }
    assert!(dir.is_dir(), "{} missing", dir.display());
    let kill = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "weir demo did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    seen.extend(rx.iter());
    let out = seen.join("\n");
    assert!(out.contains("weir demo: stopped after") && out.contains("(interrupted)"), "{out}");
    assert!(!dir.exists(), "{} left behind", dir.display());
}
