//! `weir demo`: a furnace line, an MQTT broker, a Neuron gateway and a weir
//! node, all in this process, with the rules' results shown live.
//!
//! ```text
//! furnace line ──MQTT──▶ rumqttd ──▶ weir node (4 rules) ──MQTT──▶ rumqttd ──▶ terminal
//!  (simulated)   line1/<furnace>/telemetry     │            weir/twin, weir/alarm
//!      ▲                                       └──neuron sink──▶ stand-in Neuron ──▶ terminal
//!      └──────────── gas-flow set points ◀─────────── POST /api/v2/write
//! ```
//!
//! The node is the one `weir serve` runs ([`Node`], its REST API on a printed
//! port): the stream and the rules are created through the same calls the
//! REST API makes, and run with the real MQTT and Neuron connectors over
//! TCP. Everything lives in a temporary directory that is removed on exit.

mod display;
mod line;
mod neuron;

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde_json::{json, Value};

use crate::node::Node;
use crate::rules::Status;
use display::{Display, Event};

/// Rule ids.
const TWIN: &str = "twin";
const ALARM: &str = "alarm";
const CONTROL: &str = "control";
const ADVISOR: &str = "advisor";
/// The advisor's model (made by `plugins/scripts/make_models.py`).
const GASFLOW_MODEL: &[u8] = include_bytes!("../../plugins/tests/models/gasflow.onnx");

/// Output topics.
const TWIN_TOPIC: &str = "weir/twin";
const ALARM_TOPIC: &str = "weir/alarm";

/// `weir demo` options.
#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long, value_name = "SECS")]
    duration: Option<f64>,
    /// Readings per second from each furnace.
    #[arg(long, default_value_t = 5.0, value_name = "PER_SEC")]
    rate: f64,
    /// Number of furnaces on the line.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=100))]
    furnaces: u16,
    /// Print only the progress and the summary, not each result.
    #[arg(long)]
    quiet: bool,
    /// Address of the node's REST API (a free port is used if it is taken).
    #[arg(long, default_value = "127.0.0.1:9081", value_name = "ADDR")]
    api: String,
}

/// The furnace stream: what the line's gateway publishes.
fn stream_sql() -> String {
    format!(
        "CREATE STREAM furnace (furnace string, temperature float, pressure float, o2 float, gas_flow float, \
         ts bigint) \
         WITH (DATASOURCE=\"{}\", FORMAT=\"json\", TYPE=\"mqtt\")",
        line::topic("+")
    )
}

/// `lag` of the last valid temperature of the same furnace.
const PREV_TEMP: &str = "lag(temperature) OVER (PARTITION BY furnace WHEN temperature > 0)";

/// The four rules: id, SQL and actions.
fn rules(broker: &str, neuron_url: &str) -> Vec<(&'static str, String, Value)> {
    let nominal = line::NOMINAL_TEMP;
    vec![
        (
            TWIN,
            // Device twin: drop sensor dropouts, compress to 2 s averages.
            "SELECT furnace, round(avg(temperature), 1) AS t, round(avg(pressure), 3) AS p, \
             round(avg(gas_flow), 2) AS g, count(*) AS n FROM furnace WHERE temperature > 0 \
             GROUP BY furnace, TUMBLINGWINDOW(ss, 2)"
                .to_string(),
            json!([{"mqtt": {"server": broker, "topic": TWIN_TOPIC, "sendSingle": true}}]),
        ),
        (
            ALARM,
            // Alarm: a furnace crossing 900 °C (once, on the way up), back
            // under 880 °C, or a sensor dropout.
            format!(
                "SELECT furnace, temperature AS t, {PREV_TEMP} AS prev, CASE WHEN temperature <= 0 THEN \
                 'sensor fault' WHEN temperature > 900 THEN 'overheat' ELSE 'cleared' END AS alarm FROM furnace \
                 WHERE temperature <= 0 OR (temperature > 900 AND {PREV_TEMP} <= 900) \
                 OR (temperature > 0 AND temperature < 880 AND {PREV_TEMP} >= 880)"
            ),
            json!([{"mqtt": {"server": broker, "topic": ALARM_TOPIC, "sendSingle": true}}]),
        ),
        (
            CONTROL,
            // Control: every 2 s, a furnace more than 6 °C off its set
            // temperature gets a corrected gas-flow set point, written to
            // its Neuron node.
            format!(
                "SELECT furnace, round(avg(gas_flow) - 0.03 * (avg(temperature) - {nominal}), 2) AS {tag} \
                 FROM furnace WHERE temperature > 0 GROUP BY furnace, TUMBLINGWINDOW(ss, 2) \
                 HAVING abs(avg(temperature) - {nominal}) > 6",
                tag = neuron::SET_POINT_TAG
            ),
            json!([{"neuron": {"url": neuron_url, "nodeName": "{{.furnace}}", "groupName": "burner",
                "tags": [neuron::SET_POINT_TAG]}}]),
        ),
        (
            ADVISOR,
            // AI advisor: every 2 s, an ONNX model (a scikit-learn MLP)
            // recommends each furnace's gas flow from its averages; the
            // recommendation goes to Neuron as an advisory tag.
            format!(
                "SELECT furnace, round(infer('gasflow', avg(temperature), avg(pressure), avg(o2))[0], 2) AS {tag} \
                 FROM furnace WHERE temperature > 0 GROUP BY furnace, TUMBLINGWINDOW(ss, 2)",
                tag = neuron::ADVICE_TAG
            ),
            json!([{"neuron": {"url": neuron_url, "nodeName": "{{.furnace}}", "groupName": "burner",
                "tags": [neuron::ADVICE_TAG]}}]),
        ),
    ]
}

/// `weir demo`.
pub(crate) fn main(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    if !(args.rate > 0.0 && args.rate <= 1000.0) {
        bail!("--rate must be between 0 and 1000 readings per second, got {}", args.rate);
    }
    if args.duration.is_some_and(|d| !(d > 0.0 && d.is_finite())) {
        bail!("--duration must be a positive number of seconds");
    }
    let dir = std::env::temp_dir().join(format!("weir-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let result = actix::System::new().block_on(run(args, &dir));
    let _ = std::fs::remove_dir_all(&dir);
    result.map(|()| ExitCode::SUCCESS)
}

async fn run(args: &DemoArgs, dir: &Path) -> anyhow::Result<()> {
    let mut interrupt = ctrl_c()?;
    // 1. The broker, with in-process links for the line and the display.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let broker = start_broker(port)?;
    let broker_url = format!("tcp://127.0.0.1:{port}");

    // 2. The node, with the broker as the MQTT sources' default server.
    let (data_dir, etc_dir) = (dir.join("data"), dir.join("etc"));
    std::fs::create_dir_all(&etc_dir).with_context(|| format!("cannot create {}", etc_dir.display()))?;
    std::fs::write(etc_dir.join("mqtt_source.yaml"), format!("default:\n  server: \"{broker_url}\"\n  qos: 0\n"))?;
    let node = Node::open(&data_dir, Some(&etc_dir), 2, None).await.context("cannot open the demo node")?;

    // 3. The stand-in Neuron.
    let (events_tx, events_rx) = tokio::sync::mpsc::unbounded_channel();
    let set_points: line::SetPoints = Arc::new(Mutex::new(Default::default()));
    let (neuron_server, neuron_url) =
        neuron::start(events_tx.clone(), set_points.clone()).context("cannot start the stand-in Neuron")?;
    let neuron_handle = neuron_server.handle();
    actix::spawn(neuron_server);

    // 4. The advisor's model, the stream and the rules, the way POST
    // /models, /streams and /rules make them.
    let model = dir.join("gasflow.onnx");
    std::fs::write(&model, GASFLOW_MODEL)?;
    let file = model.display().to_string();
    node.change_extensions(move |ext| ext.register_model("gasflow", &file))
        .await
        .context("cannot register the advisor's model")?;
    node.exec_stream_sql(&stream_sql()).await.context("cannot create the furnace stream")?;
    let rules = rules(&broker_url, &neuron_url);
    for (id, sql, actions) in &rules {
        let body = json!({"id": id, "sql": sql, "actions": actions}).to_string();
        node.create_rule(body.as_bytes()).await.with_context(|| format!("cannot create rule {id}"))?;
        let st = node.rule_state(id)?;
        if st.status != Status::Running {
            bail!("rule {id} did not start: {}", st.message);
        }
    }

    // 5. The REST API, for poking at the node while it runs.
    let (api_server, api_url) = start_api(&node, &args.api)?;
    let api_handle = api_server.handle();
    actix::spawn(api_server);

    banner(args, &broker_url, &neuron_url, &api_url, &rules);

    // 6. Show the output topics.
    let Broker { line: (line_tx, _line_rx), display: (mut display_tx, display_rx) } = broker;
    for topic in [TWIN_TOPIC, ALARM_TOPIC] {
        display_tx.subscribe(topic).context("cannot subscribe to the output topics")?;
    }
    let subscriber = tokio::spawn(subscribe(display_rx, events_tx));

    // 7. Start the line; once every rule reads it, the clock and the display.
    let go = Arc::new(OnceLock::new());
    let published = Arc::new(AtomicU64::new(0));
    let furnaces = line::names(usize::from(args.furnaces));
    let line_task = tokio::spawn(line::run(line_tx, furnaces, args.rate, set_points, go.clone(), published.clone()));
    tokio::select! {
        () = wait_for_input(&node) => {}
        _ = interrupt.changed() => {}
    }
    let start = *go.get_or_init(Instant::now);
    let (stop_display, stop_rx) = tokio::sync::oneshot::channel();
    let display = Display::new(node.clone(), start, published, args.quiet);
    let display_task = tokio::spawn(display.run(events_rx, stop_rx));

    // 8. Until the time is up or Ctrl-C.
    let time_up = async {
        match args.duration {
            Some(secs) => tokio::time::sleep(Duration::from_secs_f64(secs)).await,
            None => std::future::pending().await,
        }
    };
    if !*interrupt.borrow() {
        tokio::select! {
            () = time_up => {}
            _ = interrupt.changed() => {}
        }
    }
    let interrupted = *interrupt.borrow();

    // 9. Stop: the line, the display (its last progress line while the
    // rules still run), then the rules (sinks flush) and the servers.
    line_task.abort();
    let rule_counts: Vec<(String, String)> = display::RULES
        .iter()
        .map(|r| (r.id.to_string(), node.rule_state(r.id).map(|s| display::summary(&s)).unwrap_or_default()))
        .collect();
    let _ = stop_display.send(());
    let seen = display_task.await.unwrap_or_default();
    node.shutdown().await;
    api_handle.stop(true).await;
    neuron_handle.stop(true).await;
    subscriber.abort();
    let n = |count: u64, what: &str| format!("{count} {what}{}", if count == 1 { "" } else { "s" });
    println!(
        "weir demo: stopped after {:.1}s{}: {}, {}, {} and {} to Neuron",
        start.elapsed().as_secs_f64(),
        if interrupted { " (interrupted)" } else { "" },
        n(seen.twin, "device-twin row"),
        n(seen.alarm, "alarm"),
        n(seen.writes, "set-point write"),
        n(seen.advice, "model recommendation"),
    );
    for (id, counts) in rule_counts {
        println!("  rule {id:<8} {counts}");
    }
    Ok(())
}

/// Turns Ctrl-C (and SIGTERM) into a flag, registered before anything
/// starts, so that an interrupted demo still stops its rules and removes
/// its directory. A second Ctrl-C ends the process at once.
fn ctrl_c() -> anyhow::Result<tokio::sync::watch::Receiver<bool>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut int = signal(SignalKind::interrupt()).context("cannot handle Ctrl-C")?;
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        let _ = tx.send(true);
        tokio::select! {
            _ = int.recv() => std::process::exit(130),
            _ = term.recv() => std::process::exit(143),
        }
    });
    Ok(rx)
}

/// Waits (at most 15 s) until every rule has read a reading: their MQTT
/// connections are up.
async fn wait_for_input(node: &Node) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        let reading = |id: &str| node.rule_state(id).is_ok_and(|st| display::rule_counts(&st).0 > 0);
        if [TWIN, ALARM, CONTROL, ADVISOR].into_iter().all(reading) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("weir demo: the rules have not read from the broker yet; starting anyway");
}

/// The embedded broker's in-process links.
struct Broker {
    line: (rumqttd::local::LinkTx, rumqttd::local::LinkRx),
    display: (rumqttd::local::LinkTx, rumqttd::local::LinkRx),
}

/// Starts rumqttd (MQTT 3.1.1) on `port` in its own threads and waits until
/// it accepts connections.
fn start_broker(port: u16) -> anyhow::Result<Broker> {
    let config = json!({
        "id": 0,
        "router": {"max_connections": 100, "max_outgoing_packet_count": 200,
            "max_segment_size": 104857600, "max_segment_count": 10},
        "v4": {"1": {"name": "v4", "listen": format!("127.0.0.1:{port}"), "next_connection_delay_ms": 1,
            "connections": {"connection_timeout_ms": 60000, "max_payload_size": 1048576,
                "max_inflight_count": 100, "dynamic_filters": true}}},
    });
    let config: rumqttd::Config = serde_json::from_value(config).context("broker configuration")?;
    let mut broker = rumqttd::Broker::new(config);
    let line = broker.link("weir-demo-line").map_err(|e| anyhow::anyhow!("broker link: {e}"))?;
    let display = broker.link("weir-demo-display").map_err(|e| anyhow::anyhow!("broker link: {e}"))?;
    std::thread::Builder::new().name("rumqttd".into()).spawn(move || {
        if let Err(e) = broker.start() {
            tracing::error!("embedded broker: {e}");
        }
    })?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("the embedded MQTT broker did not start on port {port}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(Broker { line, display })
}

/// The REST API of `weir serve` for `node` on `bind`, or on a free port if
/// that address is taken.
fn start_api(node: &Arc<Node>, bind: &str) -> anyhow::Result<(actix_web::dev::Server, String)> {
    let data = actix_web::web::Data::from(node.clone());
    let server = move || {
        let data = data.clone();
        actix_web::HttpServer::new(move || actix_web::App::new().app_data(data.clone()).configure(crate::api::routes))
            .workers(1)
            .disable_signals()
            .shutdown_timeout(1)
    };
    let bound = match server().bind(bind) {
        Ok(s) => s,
        Err(_) => server().bind("127.0.0.1:0").context("cannot bind the REST API")?,
    };
    let url = format!("http://{}", bound.addrs()[0]);
    Ok((bound.run(), url))
}

/// Forwards what the rules publish to the display.
async fn subscribe(mut rx: rumqttd::local::LinkRx, events: tokio::sync::mpsc::UnboundedSender<Event>) {
    loop {
        let notification = match rx.next().await {
            Ok(Some(n)) => n,
            Ok(None) => continue,
            Err(_) => return,
        };
        match notification {
            rumqttd::Notification::Forward(f) => {
                let topic = String::from_utf8_lossy(&f.publish.topic).into_owned();
                let Ok(payload) = serde_json::from_slice::<Value>(&f.publish.payload) else { continue };
                // One row per message with sendSingle; an array otherwise.
                let rows = match payload {
                    Value::Array(rows) => rows,
                    row => vec![row],
                };
                for row in rows {
                    let e = if topic == TWIN_TOPIC { Event::Twin(row) } else { Event::Alarm(row) };
                    if events.send(e).is_err() {
                        return;
                    }
                }
            }
            // The router paused this link; ask for more.
            rumqttd::Notification::Unschedule if rx.wake().await.is_err() => return,
            _ => {}
        }
    }
}

fn banner(args: &DemoArgs, broker: &str, neuron: &str, api: &str, rules: &[(&str, String, Value)]) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "weir demo: a furnace line, an MQTT broker, a Neuron gateway and a weir node in one process");
    let _ = writeln!(out, "  broker   {broker}  (embedded rumqttd)");
    let _ = writeln!(
        out,
        "  line     {} furnaces × {} readings/s on {}  (overheats and sensor dropouts now and then)",
        args.furnaces,
        args.rate,
        line::topic("<furnace>")
    );
    let _ = writeln!(out, "  neuron   {neuron}/api/v2/write  (stand-in gateway; writes set points to the line)");
    let _ = writeln!(
        out,
        "  weir     {api}  (REST API: try `weir rule list --host {api}` or `curl {api}/rules/{TWIN}/status`)"
    );
    let _ = writeln!(out, "rules:");
    for (id, sql, actions) in rules {
        let sink = actions[0].as_object().and_then(|o| o.keys().next().cloned()).unwrap_or_default();
        let to = match sink.as_str() {
            "mqtt" => format!("mqtt {}", actions[0]["mqtt"]["topic"].as_str().unwrap_or_default()),
            other => format!("{other} sink"),
        };
        let _ = writeln!(out, "  {id:<8} {sql}\n           → {to}");
    }
    let stop = match args.duration {
        Some(d) => format!("for {d} s (or until Ctrl-C)"),
        None => "until Ctrl-C".to_string(),
    };
    let _ = writeln!(out, "running {stop}; progress: readings published, then per rule records in→out:");
    let _ = out.flush();
}
