//! `gotthard client …`: registering, listing and deleting OAuth clients, and reading what a
//! client did (its activity).

use gotthard::AppState;

use super::ClientCommand;

pub(super) async fn client(command: ClientCommand, state: &AppState) -> anyhow::Result<()> {
    use gotthard::oidc::{ClientAuthMethod, ClientSpec};
    use gotthard::tokens::SigningAlg;
    let now = state.clock.now();
    match command {
        ClientCommand::Create {
            name,
            redirect_uris,
            public,
            first_party,
            require_pkce,
            post_logout_redirect_uris,
            backchannel_logout_uri,
            auth_method,
            jwks,
            id_token_alg,
            admin_scope,
            introspect_for,
        } => {
            let auth_method = if public {
                ClientAuthMethod::None
            } else {
                ClientAuthMethod::parse(&auth_method)
                    .filter(|m| *m != ClientAuthMethod::None)
                    .ok_or_else(|| anyhow::anyhow!("unknown --auth-method {auth_method}"))?
            };
            let jwks = match jwks {
                Some(path) => Some(
                    std::fs::read_to_string(&path)
                        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?,
                ),
                None => None,
            };
            let spec = ClientSpec {
                name,
                auth_method,
                jwks,
                redirect_uris,
                post_logout_redirect_uris,
                backchannel_logout_uri,
                first_party,
                require_pkce,
                id_token_alg: SigningAlg::parse(&id_token_alg)
                    .ok_or_else(|| anyhow::anyhow!("unknown --id-token-alg {id_token_alg}"))?,
                admin_scope,
                introspect_for,
            };
            let (client, secret) = state.provider.create_client(spec, now).await?;
            let mut out = serde_json::json!({ "client_id": client.id, "name": client.name });
            if let Some(secret) = secret {
                out["client_secret"] = serde_json::json!(secret);
            }
            println!("{out}");
        }
        ClientCommand::List => {
            for c in state.provider.list_clients().await? {
                println!("{}\t{}\t{}", c.id, c.auth_method.as_str(), c.name);
            }
        }
        ClientCommand::Delete { id } => {
            if !state.provider.delete_client(&id).await? {
                anyhow::bail!("no client {id}");
            }
            println!("deleted client {id}");
        }
        ClientCommand::Activity {
            id,
            from,
            to,
            action,
            csv,
            limit,
        } => client_activity(state, id, from, to, action, csv, limit).await?,
    }
    Ok(())
}

/// `gotthard client activity`: the summary and the events, or the CSV export.
async fn client_activity(
    state: &AppState,
    id: String,
    from: Option<String>,
    to: Option<String>,
    action: Option<String>,
    csv: bool,
    limit: String,
) -> anyhow::Result<()> {
    use gotthard::audit::EventOwner;
    use time::format_description::well_known::Rfc3339;
    // The same parsing as the API's and the page's query string.
    let query = gotthard::http::ActivityQuery {
        from,
        to,
        action,
        limit: Some(limit),
        ..Default::default()
    };
    let (filter, _, limit) = query
        .parse()
        .map_err(|bad| anyhow::anyhow!("--{} {}", bad.name, bad.message))?;
    if !state.activity.client_on_record(&id).await? {
        anyhow::bail!("no client {id}");
    }
    let owner = EventOwner::Client(&id);
    if csv {
        let events = state
            .activity
            .all(owner, &filter, gotthard::audit::EXPORT_CAP)
            .await?;
        print!("{}", gotthard::audit::csv(&events));
        return Ok(());
    }
    let time = |at: time::OffsetDateTime| at.format(&Rfc3339).unwrap_or_default();
    let name = match state.provider.client(&id).await? {
        Some(client) => client.name,
        None => "(deleted)".to_string(),
    };
    let summary = state
        .activity
        .client_summary(&id, &filter, state.clock.now())
        .await?;
    println!("client\t{id}\t{name}");
    println!("window\t{}\t{}", time(summary.from), time(summary.to));
    println!("tokens issued\t{}", summary.tokens);
    println!("auth failures\t{}", summary.failures);
    println!(
        "last used\t{}",
        summary.last_issued.map_or("never".to_string(), time)
    );
    println!("\nper hour (UTC)\ttokens\tfailures");
    for h in &summary.hours {
        println!("{}\t{}\t{}", time(h.hour), h.tokens, h.failures);
    }
    println!("\nsource address\ttokens\tfailures\tlast seen");
    for a in &summary.addresses {
        println!(
            "{}\t{}\t{}\t{}",
            a.ip,
            a.tokens,
            a.failures,
            time(a.last_seen)
        );
    }
    let page = state.activity.page(owner, &filter, None, limit).await?;
    println!("\nevents, newest first\taction\tip\tdetails");
    for e in &page.events {
        println!(
            "{}\t{}\t{}\t{}",
            time(e.created_at),
            e.action,
            e.ip,
            e.details
        );
    }
    if page.next.is_some() {
        println!("… more: narrow --from/--to, raise --limit, or export them with --csv");
    }
    Ok(())
}
