//! Disconnect storms at CI scale (`tools/storm` runs the full 15,000): 2,000
//! subscribers over every transport vanish at once, half with FIN and half
//! with RST. The server must forget every one of them (`/info` back to 0
//! subscribers and, after `channel_timeout`, 0 channels), and the same
//! number of clients must then be able to come back and each get its
//! channel's message. `/stats` must count every connection open, then none.
//! Asserts counts, never times.

use crate::support::{admin, config, eventually, start, Client};
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
    assert!(status.contains("200"), "{status}");
    let number = |key: &str| -> u64 {
        let pat = format!("\"{key}\": ");
        let at = body.find(&pat).unwrap_or_else(|| panic!("{key} in {body}")) + pat.len();
        body[at..]
            .split([',', '}'])
            .next()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{key} in {body}"))
    };
    (number("channels"), number("subscribers"))
}

/// Open front connections, from the admin `/stats` body.
fn connections(server: &Server) -> u64 {
    let (status, _, body) = admin(server, "/stats");
    assert!(status.contains("200"), "{status}");
    let pat = "\"connections\":";
    let at = body.find(pat).unwrap_or_else(|| panic!("connections in {body}")) + pat.len();
    body[at..]
        .split([',', '}'])
        .next()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("connections in {body}"))
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
        assert!(status.contains("200"), "{status} {body}");
    }
    for (i, client) in clients.iter_mut().enumerate() {
        let want = format!(r#""cname":"{}","seq":1,"content":"back{}"}}"#, channel(i), i % CHANNELS);
        client.read_until(want.as_bytes());
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
