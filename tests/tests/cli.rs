//! The `k1s` command as a user meets it: version, server start and stop, and a damaged data directory.

use k1s_tests::{Server, k1s};

#[test]
fn version_names_the_kubernetes_version_served() {
    let out = k1s().arg("version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("k1s version v"), "{text}");
    assert!(text.contains("Kubernetes v1.33"), "{text}");
}

#[test]
fn server_flags_exist() {
    let out = k1s().args(["server", "--help"]).output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--data-dir",
        "--ephemeral",
        "--bind-address",
        "--https-listen-port",
        "--disable-agent",
        "--node-name",
        "--history-window",
        "--history-min-revisions",
    ] {
        assert!(help.contains(flag), "server --help lacks {flag}:\n{help}");
    }
    assert!(help.contains("/var/lib/k1s"), "{help}");
}

#[test]
fn server_starts_and_stops_cleanly_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    for args in [&[][..], &["--ephemeral"][..]] {
        let server = Server::start(tmp.path().join("data"), args).unwrap();
        server
            .wait_for_log("store ready", std::time::Duration::from_secs(5))
            .unwrap();
        let status = server.stop().unwrap();
        assert!(status.success(), "exit status {status}");
    }
}

#[test]
fn damaged_data_directory_is_a_clear_startup_error() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    Server::start(data.clone(), &[]).unwrap().stop().unwrap();

    // Overwrite sled's log with garbage: the server must refuse to start, naming the path.
    let db = data.join("db");
    std::fs::write(db.join("db"), vec![0xA5u8; 64 * 1024]).unwrap();
    let stderr = refused_start(&data);
    assert!(
        stderr.contains(&db.display().to_string()),
        "error does not name {}:\n{stderr}",
        db.display()
    );
    assert!(stderr.contains("corrupt"), "{stderr}");

    // A store path that is not a directory.
    std::fs::remove_dir_all(&db).unwrap();
    std::fs::write(&db, b"not a directory").unwrap();
    let stderr = refused_start(&data);
    assert!(
        stderr.contains(&db.display().to_string()) && stderr.contains("not a directory"),
        "{stderr}"
    );
}

/// Run `k1s server` on `data`, expect it to exit with an error, and return what it printed.
fn refused_start(data: &std::path::Path) -> String {
    let out = k1s()
        .arg("server")
        .arg("--data-dir")
        .arg(data)
        .args(["--disable-agent"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "server started on a damaged store:\n{stderr}"
    );
    stderr
}
