//! The Debian package (`[package.metadata.deb]` in Cargo.toml), built with
//! `cargo deb` from the binary cargo built for this test run (copied where
//! `cargo deb --no-build` looks for a release binary, so nothing is
//! compiled again), then checked with `dpkg-deb`: the files, their modes and
//! bytes, the control fields, the conffile, the maintainer scripts, and the
//! packaged binary accepting the packaged config.
//!
//! A missing cargo-deb fails this test; `./tools/test` installs it
//! (`cargo install cargo-deb --version <pinned> --locked`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::binary::hermetic;
use crate::support::files::{repo, TempDir};

fn run(cmd: &mut Command) -> Output {
    let o = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        o.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Builds the package into `dir`; returns its path.
fn build_deb(dir: &Path) -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let has_deb = Command::new(&cargo).args(["deb", "--version"]).output();
    assert!(
        has_deb.as_ref().is_ok_and(|o| o.status.success()),
        "cargo-deb is missing: run ./tools/test (it installs it) or cargo install cargo-deb --locked"
    );
    // `cargo deb --no-build` takes target/release/comet from the target
    // directory; give it one of its own that holds this run's binary.
    let target = dir.join("target");
    std::fs::create_dir_all(target.join("release")).expect("target dir");
    std::fs::copy(env!("CARGO_BIN_EXE_comet"), target.join("release/comet")).expect("copy the binary");
    let out = dir.join("out");
    std::fs::create_dir_all(&out).expect("out dir");
    run(Command::new(&cargo)
        .args(["deb", "--no-build", "--fast", "--quiet", "--manifest-path"])
        .arg(repo().join("Cargo.toml"))
        .arg("-o")
        .arg(&out)
        .env("CARGO_TARGET_DIR", &target));
    let debs: Vec<PathBuf> = std::fs::read_dir(&out)
        .expect("read out dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .collect();
    assert_eq!(debs.len(), 1, "one package: {debs:?}");
    debs.into_iter().next().expect("one package")
}

#[test]
fn deb_package_holds_the_server_config_unit_and_sysctl() {
    let dir = TempDir::new("deb");
    let deb = build_deb(dir.path());
    let arch = text(&run(Command::new("dpkg").arg("--print-architecture")))
        .trim()
        .to_string();
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        deb.file_name().and_then(|n| n.to_str()),
        Some(format!("comet_{version}-1_{arch}.deb").as_str())
    );

    // The files: (mode, path) of every regular file, owned by root.
    let listing = text(&run(Command::new("dpkg-deb").arg("-c").arg(&deb)));
    let mut files: Vec<(String, String)> = Vec::new();
    for line in listing.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cols.get(1), Some(&"0/0"), "owned by root: {line}");
        if cols[0].starts_with('-') {
            files.push((cols[0].to_string(), cols[cols.len() - 1].to_string()));
        }
    }
    files.sort_by(|a, b| a.1.cmp(&b.1));
    let want = [
        ("-rw-r--r--", "./etc/comet/comet.yaml"),
        ("-rwxr-xr-x", "./usr/bin/comet"),
        ("-rw-r--r--", "./usr/lib/sysctl.d/60-comet.conf"),
        ("-rw-r--r--", "./usr/lib/systemd/system/comet.service"),
        ("-rw-r--r--", "./usr/share/doc/comet/README.md"),
        ("-rw-r--r--", "./usr/share/doc/comet/copyright"),
        ("-rw-r--r--", "./usr/share/doc/comet/examples/grafana/comet.json"),
        ("-rw-r--r--", "./usr/share/doc/comet/examples/nginx/comet.conf"),
    ];
    let want: Vec<(String, String)> = want.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    assert_eq!(files, want, "dpkg-deb -c:\n{listing}");

    // The control fields.
    let field = |name: &str| {
        text(&run(Command::new("dpkg-deb").arg("-f").arg(&deb).arg(name)))
            .trim()
            .to_string()
    };
    assert_eq!(field("Package"), "comet");
    assert_eq!(field("Version"), format!("{version}-1"));
    assert_eq!(field("Architecture"), arch);
    assert_eq!(field("Section"), "net");
    assert!(field("Depends").starts_with("libc6 (>= "), "{}", field("Depends"));
    assert!(field("Maintainer").contains('<'), "{}", field("Maintainer"));
    assert!(
        field("Description").starts_with("An icomet-compatible comet"),
        "{}",
        field("Description")
    );

    // The config is a conffile (an upgrade keeps the operator's edits), and
    // the unit is neither enabled nor started by the install.
    let control = dir.path().join("control");
    run(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control));
    let read = |p: PathBuf| std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    assert_eq!(read(control.join("conffiles")), "/etc/comet/comet.yaml\n");
    let postinst = read(control.join("postinst"));
    assert!(postinst.contains("daemon-reload"), "{postinst}");
    assert!(
        postinst.contains("try-restart comet.service"),
        "an upgrade restarts a running comet"
    );
    assert!(!postinst.contains("deb-systemd-invoke start"), "{postinst}");
    let prerm = read(control.join("prerm"));
    assert!(prerm.contains("stop comet.service"), "a removal stops comet: {prerm}");

    // The bytes are the repository's, and the packaged binary accepts the
    // packaged config.
    let root = dir.path().join("root");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root));
    for (packaged, source) in [
        ("etc/comet/comet.yaml", "comet.yaml"),
        ("usr/lib/systemd/system/comet.service", "deploy/systemd/comet.service"),
        ("usr/lib/sysctl.d/60-comet.conf", "deploy/sysctl/60-comet.conf"),
        (
            "usr/share/doc/comet/examples/nginx/comet.conf",
            "deploy/nginx/comet.conf",
        ),
        (
            "usr/share/doc/comet/examples/grafana/comet.json",
            "deploy/grafana/comet.json",
        ),
    ] {
        assert_eq!(read(root.join(packaged)), read(repo().join(source)), "{packaged}");
    }
    let mut check = Command::new(root.join("usr/bin/comet"));
    check
        .arg("--check-config")
        .arg("-c")
        .arg(root.join("etc/comet/comet.yaml"));
    assert_eq!(text(&run(hermetic(&mut check))), "config OK\n");
}
