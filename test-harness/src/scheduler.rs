//! Virtual-time events: ticks, callout timeouts, delayed upstream replies.

use crate::callout::{
    CONNECT_FAILURE_BODY, CalloutResponse, PendingCallout, TIMEOUT_BODY, UpstreamReply, synthesized,
};
use crate::headers::HeaderMap;
use crate::host::Host;
use crate::vm::VmInner;
use std::time::SystemTime;

pub(crate) enum Delivery {
    Reply(UpstreamReply),
    Timeout,
}

fn response_for(delivery: Delivery) -> Option<CalloutResponse> {
    Some(match delivery {
        Delivery::Timeout => synthesized(504, TIMEOUT_BODY),
        Delivery::Reply(UpstreamReply::Response {
            headers,
            body,
            trailers,
            ..
        }) => CalloutResponse {
            headers: HeaderMap::from_pairs(&headers),
            body,
            trailers: HeaderMap::from_pairs(&trailers),
            status_code: 0,
            status_message: String::new(),
        },
        Delivery::Reply(UpstreamReply::Reset) => CalloutResponse {
            status_code: crate::abi::Status::BrokenConnection as u32,
            status_message: "reset".to_string(),
            ..Default::default()
        },
        Delivery::Reply(UpstreamReply::ConnectFailure) => synthesized(503, CONNECT_FAILURE_BODY),
        Delivery::Reply(UpstreamReply::Hang) => return None,
    })
}

/// Delivers to a VM reached through the host (from test code).
pub(crate) fn deliver(host: &Host, p: PendingCallout, delivery: Delivery) {
    let Some(vm) = host.vm_by_index(p.vm_index) else {
        return;
    };
    let Ok(mut inner) = vm.try_borrow_mut() else {
        host.state.borrow_mut().callouts.push(p);
        return;
    };
    deliver_to(&mut inner, p, delivery);
}

pub(crate) fn deliver_to(inner: &mut VmInner, mut p: PendingCallout, delivery: Delivery) {
    match response_for(delivery) {
        Some(resp) => inner.deliver_http_call_response(p.token, resp),
        None => {
            p.scheduled = None;
            inner.data().host.borrow_mut().callouts.push(p);
        }
    }
}

/// Scripted replies due now for this VM. Returns true if any was delivered.
pub(crate) fn deliver_immediate(inner: &mut VmInner) -> bool {
    let idx = inner.data().vm_index;
    let mut any = false;
    loop {
        let due = {
            let host = inner.data().host.clone();
            let mut st = host.borrow_mut();
            let now = st.now;
            let pos = st.callouts.iter().position(|p| {
                p.vm_index == idx && matches!(&p.scheduled, Some((t, _)) if *t <= now)
            });
            pos.map(|i| st.callouts.remove(i))
        };
        let Some(mut p) = due else {
            break;
        };
        any = true;
        let reply = p.scheduled.take().map(|(_, r)| r);
        if let Some(r) = reply {
            deliver_to(inner, p, Delivery::Reply(r));
        }
    }
    any
}

#[derive(PartialEq, Eq, PartialOrd, Ord, Clone, Copy)]
enum Event {
    Reply(u64),
    Timeout(u64),
    Tick(usize),
}

/// Fires every event with time <= target, in time order.
pub(crate) fn run_until(host: &Host, target: SystemTime) {
    for _ in 0..1_000_000 {
        let mut best: Option<(SystemTime, Event)> = None;
        let mut consider = |t: SystemTime, e: Event| {
            if t <= target && best.as_ref().is_none_or(|b| (t, e) < *b) {
                best = Some((t, e));
            }
        };
        {
            let st = host.state.borrow();
            for p in &st.callouts {
                if let Some((t, _)) = &p.scheduled {
                    consider(*t, Event::Reply(p.seq));
                }
                if let Some(d) = p.deadline {
                    consider(d, Event::Timeout(p.seq));
                }
            }
            for (idx, w) in st.vms.iter().enumerate() {
                if let Some(vm) = w.upgrade()
                    && let Ok(i) = vm.try_borrow()
                    && i.dead.is_none()
                    && let Some(t) = i.data().next_tick
                {
                    consider(t, Event::Tick(idx));
                }
            }
        }
        let Some((t, e)) = best else {
            host.run_pending();
            return;
        };
        {
            host.state.borrow_mut().move_to(t);
        }
        match e {
            Event::Tick(idx) => {
                if let Some(vm) = host.vm_by_index(idx)
                    && let Ok(mut i) = vm.try_borrow_mut()
                {
                    i.fire_tick();
                }
            }
            Event::Reply(seq) => {
                if let Some(mut p) = crate::callout::take(host, seq)
                    && let Some((_, r)) = p.scheduled.take()
                {
                    deliver(host, p, Delivery::Reply(r));
                }
            }
            Event::Timeout(seq) => {
                if let Some(p) = crate::callout::take(host, seq) {
                    deliver(host, p, Delivery::Timeout);
                }
            }
        }
    }
}
