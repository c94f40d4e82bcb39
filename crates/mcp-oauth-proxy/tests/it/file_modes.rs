//! The files the proxy creates hold secrets (sealed credentials, token hashes, who logged
//! in from where): only the proxy's user may read them.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use mcp_oauth_core::token::random_id;

use crate::harness::{Harness, Start};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

#[tokio::test]
async fn the_database_and_the_audit_trail_are_created_private() {
    let dir = std::env::temp_dir().join(format!("mop-modes-{}", random_id()));
    let audit = dir.join("audit.log");
    let h = Harness::start_with(Start {
        db_dir: Some(dir.clone()),
        extra_toml: format!("[audit]\npath = \"{}\"\n", audit.display()),
        ..Default::default()
    })
    .await;
    // A login writes to the database (its WAL and shared-memory files exist while it is
    // open) and to the audit trail.
    h.logged_in().await;
    for name in ["proxy.db", "proxy.db-wal", "proxy.db-shm", "audit.log"] {
        let mode = mode(&dir.join(name));
        assert_eq!(mode & 0o077, 0, "{name} is created {mode:o}, readable by others");
    }
}

#[tokio::test]
async fn files_that_exist_keep_their_mode() {
    let dir = std::env::temp_dir().join(format!("mop-modes-{}", random_id()));
    std::fs::create_dir_all(&dir).unwrap();
    let audit = dir.join("audit.log");
    for path in [dir.join("proxy.db"), audit.clone()] {
        std::fs::write(&path, b"").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    }
    let h = Harness::start_with(Start {
        db_dir: Some(dir.clone()),
        extra_toml: format!("[audit]\npath = \"{}\"\n", audit.display()),
        ..Default::default()
    })
    .await;
    h.logged_in().await;
    // The operator chose these (a group that ships the audit trail, say).
    assert_eq!(mode(&dir.join("proxy.db")), 0o640);
    assert_eq!(mode(&audit), 0o640);
}
