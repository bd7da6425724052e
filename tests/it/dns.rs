//! A DNS server on loopback (UDP) that answers TXT questions from a table the test fills:
//! the stand-in for the DNS of the internet, with its failure modes (no such name, no TXT
//! record, no answer at all).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use hickory_resolver::proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_resolver::proto::rr::rdata::TXT;
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};

pub struct DnsDouble {
    pub addr: SocketAddr,
    records: Arc<Mutex<HashMap<String, Vec<String>>>>,
    silent: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl DnsDouble {
    pub async fn start() -> DnsDouble {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let records: Arc<Mutex<HashMap<String, Vec<String>>>> = Arc::default();
        let silent = Arc::new(AtomicBool::new(false));
        let (table, mute) = (records.clone(), silent.clone());
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                    return;
                };
                if mute.load(Ordering::SeqCst) {
                    continue;
                }
                let Ok(query) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let answer = answer(&query, &table.lock().unwrap());
                let _ = socket.send_to(&answer.to_vec().unwrap(), from).await;
            }
        });
        DnsDouble {
            addr,
            records,
            silent,
            task,
        }
    }

    /// Publishes a TXT record (added to those at the name).
    pub fn add_txt(&self, name: &str, value: &str) {
        self.records
            .lock()
            .unwrap()
            .entry(name.trim_end_matches('.').to_ascii_lowercase())
            .or_default()
            .push(value.to_string());
    }

    /// Withdraws every record at the name.
    pub fn remove(&self, name: &str) {
        self.records
            .lock()
            .unwrap()
            .remove(&name.trim_end_matches('.').to_ascii_lowercase());
    }

    /// Stops answering (a DNS outage), or answers again.
    pub fn set_silent(&self, silent: bool) {
        self.silent.store(silent, Ordering::SeqCst);
    }
}

impl Drop for DnsDouble {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn answer(query: &Message, table: &HashMap<String, Vec<String>>) -> Message {
    let mut response = Message::new();
    response
        .set_id(query.id())
        .set_message_type(MessageType::Response)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(query.recursion_desired())
        .set_recursion_available(true)
        .set_authoritative(true);
    let Some(question) = query.queries().first() else {
        response.set_response_code(ResponseCode::FormErr);
        return response;
    };
    response.add_query(question.clone());
    let name = question
        .name()
        .to_ascii()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    match table.get(&name) {
        None => {
            response.set_response_code(ResponseCode::NXDomain);
        }
        Some(values) if question.query_type() == RecordType::TXT => {
            for value in values {
                let owner = Name::from_ascii(format!("{name}.")).unwrap();
                let rdata = RData::TXT(TXT::new(vec![value.clone()]));
                response.add_answer(Record::from_rdata(owner, 60, rdata));
            }
        }
        // The name exists, without records of the asked type: an empty NOERROR.
        Some(_) => {}
    }
    response
}
