//! The scaffolding echo server of `tests/it/support/ws_scaffold.rs` as a program, for
//! running Autobahn by hand (for example the 9.* performance cases):
//!
//! ```sh
//! cargo run --release --example ws_echo -- 16777216 &   # prints ws://127.0.0.1:PORT/
//! AUTOBAHN_CASES='["9.*"]' tools/autobahn/run ws://127.0.0.1:PORT/
//! ```
//!
//! The argument is the largest message echoed (default 16 MiB, what 9.*
//! sends). It serves until killed.

#[path = "../tests/it/support/ws_scaffold.rs"]
mod ws_scaffold;

fn main() {
    let max = match std::env::args().nth(1).map(|a| a.parse::<usize>()) {
        None => 16 << 20,
        Some(Ok(n)) => n,
        Some(Err(e)) => {
            eprintln!("ws_echo: the argument is the largest message in bytes: {e}");
            std::process::exit(2);
        }
    };
    let server = ws_scaffold::EchoServer::start(max, comet::ws::AllowedOrigins::any());
    println!("{}", server.url());
    loop {
        std::thread::park();
    }
}
