//! Disconnect storms at CI scale (`tools/storm` runs the full 15,000): 2,000
//! subscribers over every transport vanish at once, half with FIN and half
//! with RST. The server must forget every one of them (`/info` back to 0
//! subscribers and, after `channel_timeout`, 0 channels), and the same
//! number of clients must then be able to come back and each get its
//! channel's message. `/stats` must count every connection open, then none.
//! Asserts counts, never times.

use crate::support::{admin, config, eventually, json, start, Client};
use comet::server::Server;

const SUBSCRIBERS: usize = 2000;
/// Not a multiple of the transport count, so every channel mixes transports.
const CHANNELS: usize = 199;
/// Request prefixes of the five transports (JSONP is `/sub` with a callback).
const TRANSPORTS: [&str; 5] = ["/sub?", "/sub?cb=cb_x&", "/stream?", "/sse?", "/iframe?"];

/// Raises the soft descriptor limit: both ends of every connection live in this process.
fn raise_nofile() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let lim = getrlimit(Resource::Nofile);
    let _ = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: lim.maximum,
            maximum: lim.maximum,
        },
    );
    let now = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    assert!(
        now >= 2 * SUBSCRIBERS as u64 + 512,
        "descriptor limit {now} is too low for this test"
    );
}

/// `(channels, subscribers)` from the admin `/info` body.
fn info(server: &Server) -> (u64, u64) {
    let (status, _, body) = admin(server, "/info");
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    let info = json(&body);
    assert_eq!(info["version"], "0.2.5", "{body}");
    let count = |key: &str| {
        info[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{key} is not a count in {body}"))
    };
    (count("channels"), count("subscribers"))
}

/// Open front connections, from the admin `/stats` body.
fn connections(server: &Server) -> u64 {
    let (status, _, body) = admin(server, "/stats");
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    json(&body)["connections"]
        .as_u64()
        .unwrap_or_else(|| panic!("connections is not a count in {body}"))
}

/// The one message a subscriber that sent `transport`'s request gets when
/// its channel publishes: the head, the transport's preamble (SSE `retry:`,
/// the iframe's prologue) and one frame, unwrapped and parsed.
fn read_message(c: &mut Client, transport: &str) -> serde_json::Value {
    let head = c.head();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{transport}: {head}");
    if transport == "/sse?" || transport == "/iframe?" {
        c.chunk();
    }
    let frame = c.chunk_str();
    let inner = match transport {
        "/sub?" | "/stream?" => frame.strip_suffix('\n'),
        "/sub?cb=cb_x&" => frame.strip_prefix("cb_x(").and_then(|f| f.strip_suffix(");\n")),
        "/sse?" => frame.strip_prefix("id: 1\ndata: ").and_then(|f| f.strip_suffix("\n\n")),
        "/iframe?" => frame
            .strip_prefix("<script>parent.icomet_cb(")
            .and_then(|f| f.strip_suffix(");</script>\n")),
        other => panic!("unknown transport {other}"),
    };
    json(inner.unwrap_or_else(|| panic!("{transport}: not its frame: {frame:?}")))
}

fn channel(i: usize) -> String {
    format!("storm{}", i % CHANNELS)
}

/// Opens every subscriber (seq=1 on a fresh channel: each one waits) and
/// waits until `/info` counts them all.
fn connect_all(server: &Server) -> Vec<Client> {
    let clients: Vec<Client> = (0..SUBSCRIBERS)
        .map(|i| {
            let mut c = Client::connect(server.front_addr());
            c.get(&format!(
                "{}cname={}&seq=1",
                TRANSPORTS[i % TRANSPORTS.len()],
                channel(i)
            ));
            c
        })
        .collect();
    eventually("every subscriber counted", || {
        info(server) == (CHANNELS as u64, SUBSCRIBERS as u64)
    });
    assert_eq!(connections(server), SUBSCRIBERS as u64, "/stats open connections");
    clients
}

/// Every client goes at once: even ones with a plain close (FIN), odd ones
/// with SO_LINGER {on, 0} first, so that close sends an RST.
fn vanish(clients: Vec<Client>) {
    for c in clients.iter().skip(1).step_by(2) {
        // Linger on, zero seconds: the close sends RST instead of FIN.
        socket2::SockRef::from(&c.stream)
            .set_linger(Some(std::time::Duration::ZERO))
            .expect("SO_LINGER");
    }
    drop(clients);
}

#[test]
fn subscribers_that_vanish_at_once_are_all_forgotten_and_can_come_back() {
    raise_nofile();
    let mut cfg = config();
    cfg.front.channel_timeout = 1;
    let server = start(cfg);

    let clients = connect_all(&server);
    vanish(clients);
    eventually("0 subscribers after the storm", || info(&server).1 == 0);
    eventually("0 channels after the storm", || info(&server) == (0, 0));
    eventually("0 open connections after the storm", || connections(&server) == 0);

    // Everyone comes back at once; each channel gets one message, and every
    // subscriber must receive its own channel's.
    let mut clients = connect_all(&server);
    for c in 0..CHANNELS {
        let (status, _, body) = admin(&server, &format!("/push?cname={}&content=back{c}", channel(c)));
        assert_eq!(
            (status.as_str(), body.as_str()),
            ("HTTP/1.1 200 OK", "{\"type\":\"ok\"}\n")
        );
    }
    for (i, client) in clients.iter_mut().enumerate() {
        let transport = TRANSPORTS[i % TRANSPORTS.len()];
        assert_eq!(
            read_message(client, transport),
            serde_json::json!({
                "type": "data",
                "cname": channel(i),
                "seq": 1,
                "content": format!("back{}", i % CHANNELS),
            }),
            "subscriber {i} over {transport}"
        );
    }
    // Long polls were answered and left; the streams are still there.
    let streams = (0..SUBSCRIBERS).filter(|i| i % TRANSPORTS.len() >= 2).count() as u64;
    eventually("only streaming subscribers left", || info(&server).1 == streams);

    vanish(clients);
    eventually("0 subscribers after the second storm", || info(&server).1 == 0);
    eventually("0 channels after the second storm", || info(&server) == (0, 0));
    eventually("0 open connections after the second storm", || {
        connections(&server) == 0
    });
    server.shutdown();
}
