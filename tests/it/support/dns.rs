//! A DNS server on loopback for the tests: it answers A queries for names
//! under `.test.` with 127.0.0.1, answers SERVFAIL for names that start with
//! `fail`, NXDOMAIN for the rest, and counts every query it receives.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};
use tokio::net::UdpSocket;

pub struct DnsServer {
    addr: SocketAddr,
    queries: Arc<Mutex<HashMap<String, u32>>>,
}

impl DnsServer {
    pub async fn start() -> DnsServer {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let queries: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
        let counted = Arc::clone(&queries);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                    return;
                };
                let Ok(query) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let reply = answer(&query, &counted);
                let _ = socket.send_to(&reply.to_vec().unwrap(), from).await;
            }
        });
        DnsServer { addr, queries }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Queries received in all.
    pub fn total(&self) -> u32 {
        self.queries.lock().unwrap().values().sum()
    }

    /// Distinct names asked for.
    pub fn names(&self) -> usize {
        self.queries.lock().unwrap().len()
    }
}

fn answer(query: &Message, counted: &Mutex<HashMap<String, u32>>) -> Message {
    let mut reply = Message::response(query.metadata.id, query.metadata.op_code);
    reply.metadata.message_type = MessageType::Response;
    reply.metadata.recursion_desired = query.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    for q in &query.queries {
        let name = q.name().to_ascii().to_ascii_lowercase();
        *counted.lock().unwrap().entry(name.clone()).or_default() += 1;
        reply.queries.push(q.clone());
        if name.starts_with("fail") {
            reply.metadata.response_code = ResponseCode::ServFail;
        } else if !name.ends_with(".test.") {
            reply.metadata.response_code = ResponseCode::NXDomain;
        } else if q.query_type() == RecordType::A {
            let record = Record::from_rdata(q.name().clone(), 300, RData::A(A::new(127, 0, 0, 1)));
            reply.answers.push(record);
        }
    }
    reply
}
