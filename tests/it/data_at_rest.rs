//! What stays on disk: the data folder, the SQLite file and mail written as files are the
//! server user's alone, and sent mail (with its unlock links) is deleted after its retention.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use reqwest::StatusCode;
use time::Duration;

use crate::support::{PASSWORD, TestApp, TestDb, databases};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn eml_files(db: &TestDb) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(db.dir.path().join("data").join("mail"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect()
}

/// Three wrong passwords lock the account (threshold 3), which queues the mail with its
/// unlock link.
async fn lock_out(app: &TestApp, email: &str) {
    let browser = app.client();
    for _ in 0..3 {
        let response = app.login(&browser, email, "wrong-password!").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn the_data_folder_database_and_mail_files_are_private() {
    for db in databases().await {
        // SQLite in its default place, the data folder, which the server creates.
        let mut extra = vec![("lockout.default_threshold", "3")];
        if db.backend == "sqlite" {
            extra.push(("database.url", ""));
        }
        let app = TestApp::start_with(&db, &extra).await;
        app.create_user("ada@example.com", PASSWORD).await;
        let data = db.dir.path().join("data");
        assert_eq!(mode(&data), 0o700, "{}", db.backend);
        assert_eq!(mode(&data.join("mail")), 0o700, "{}", db.backend);
        if db.backend == "sqlite" {
            let file = data.join("gotthard.db");
            assert_eq!(mode(&file), 0o600);
            for side in ["gotthard.db-wal", "gotthard.db-shm"] {
                let side = data.join(side);
                assert!(side.exists(), "WAL mode: {}", side.display());
                assert_eq!(mode(&side), 0o600, "{}", side.display());
            }
        }
        lock_out(&app, "ada@example.com").await;
        let delivered = app
            .state
            .mailer
            .deliver_due(app.state.clock.now())
            .await
            .unwrap();
        assert_eq!(delivered, 1, "{}", db.backend);
        let files = eml_files(&db);
        assert_eq!(files.len(), 1);
        assert!(
            std::fs::read_to_string(&files[0])
                .unwrap()
                .contains("/unlock")
        );
        assert_eq!(mode(&files[0]), 0o600, "{}", db.backend);
    }
}

#[tokio::test]
async fn sent_mail_is_deleted_after_its_retention_at_the_maintenance_tick() {
    for db in databases().await {
        let app = TestApp::start_with(
            &db,
            &[
                ("lockout.default_threshold", "3"),
                ("smtp.sent_retention_hours", "24"),
            ],
        )
        .await;
        app.create_user("ada@example.com", PASSWORD).await;
        app.create_user("bob@example.com", PASSWORD).await;
        lock_out(&app, "ada@example.com").await;
        let now = app.state.clock.now();
        assert_eq!(app.state.mailer.deliver_due(now).await.unwrap(), 1);
        assert_eq!(eml_files(&db).len(), 1);
        // Bob's mail cannot be delivered (it is never tried here): it waits in the outbox.
        lock_out(&app, "bob@example.com").await;
        assert_eq!(db.count("mail_outbox").await, 2);

        gotthard::maintain(&app.state).await;
        assert_eq!(db.count("mail_outbox").await, 2, "{}", db.backend);
        app.state.clock.advance(Duration::hours(23));
        gotthard::maintain(&app.state).await;
        assert_eq!(db.count("mail_outbox").await, 2, "{}: within", db.backend);
        assert_eq!(eml_files(&db).len(), 1);

        app.state.clock.advance(Duration::hours(2));
        gotthard::maintain(&app.state).await;
        assert_eq!(
            db.count("mail_outbox").await,
            1,
            "{}: the sent one is gone, the waiting one stays",
            db.backend
        );
        assert!(eml_files(&db).is_empty(), "{}: its file too", db.backend);

        // Undelivered for a week: given up (its unlock link has expired long since).
        app.state.clock.advance(Duration::days(7));
        gotthard::maintain(&app.state).await;
        assert_eq!(db.count("mail_outbox").await, 0, "{}", db.backend);
    }
}
