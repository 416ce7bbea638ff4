//! Conversation routing, on accounts of a pool but without Kimi.

use super::*;
use crate::kimi::pool::{Pool, marked_conversation};

/// The accounts of a pass-through credential of `tokens` (a comma list).
fn accounts(tokens: &str) -> Vec<Arc<pool::Account>> {
    Pool::new(1).accounts(Credential::Tokens(tokens))
}

fn fingerprints(accounts: &[Arc<pool::Account>]) -> Vec<String> {
    accounts.iter().map(|a| a.fingerprint().to_string()).collect()
}

#[test]
fn a_new_conversation_may_run_on_every_account() {
    let all = accounts("rt-a,rt-b");
    for conversation in [Conversation::Ephemeral, Conversation::Keep] {
        let (routed, continued) = route(all.clone(), Credential::Tokens("rt-a,rt-b"), &conversation).unwrap();
        assert_eq!((fingerprints(&routed), continued), (fingerprints(&all), None));
    }
}

#[test]
fn a_kept_conversation_continues_on_the_account_its_id_names() {
    let all = accounts("rt-a,rt-b");
    let id = marked_conversation("chat-1", all[1].fingerprint());
    let (routed, continued) =
        route(all.clone(), Credential::Tokens("rt-a,rt-b"), &Conversation::Continue(id)).unwrap();
    assert_eq!(fingerprints(&routed), [all[1].fingerprint()]);
    assert_eq!(continued.as_deref(), Some("chat-1"), "Kimi is given its own id, without the mark");
}

#[test]
fn a_conversation_on_an_account_that_left_is_not_found() {
    let id = marked_conversation("chat-1", accounts("rt-gone")[0].fingerprint());
    let error =
        route(accounts("rt-a"), Credential::Tokens("rt-a"), &Conversation::Continue(id)).err().unwrap();
    assert!(matches!(&error, Error::NotFound(m) if m.contains("not in this server's pool")), "{error:?}");
}

#[test]
fn an_unmarked_conversation_continues_only_on_a_lone_account() {
    let plain = Conversation::Continue("chat-1".into());
    let (routed, continued) = route(accounts("rt-a"), Credential::Tokens("rt-a"), &plain).unwrap();
    assert_eq!((routed.len(), continued), (1, None), "the id goes to Kimi as it is");
    let error = route(accounts("rt-a,rt-b"), Credential::Tokens("rt-a,rt-b"), &plain).err().unwrap();
    assert!(
        matches!(&error, Error::NotFound(m) if m.contains("does not say which Kimi account")),
        "{error:?}"
    );
}

#[test]
fn no_accounts_is_the_callers_trouble_or_the_servers() {
    let error = route(Vec::new(), Credential::Tokens(""), &Conversation::Ephemeral).err().unwrap();
    assert!(matches!(error, Error::Unauthorized(_)), "{error:?}");
    let error = route(Vec::new(), Credential::Pool, &Conversation::Ephemeral).err().unwrap();
    assert!(matches!(error, Error::Overloaded(_, None)), "{error:?}");
}

#[test]
fn a_kept_conversation_is_marked_whenever_there_was_a_choice() {
    let keep = Conversation::Keep;
    assert!(!marks(&keep, false, 1, false), "one pass-through account: the id stays Kimi's");
    assert!(marks(&keep, false, 2, false), "several accounts");
    assert!(marks(&keep, false, 1, true), "the server's pool, even of one");
    assert!(marks(&Conversation::Continue("c".into()), true, 1, false), "it came marked");
    assert!(!marks(&Conversation::Continue("c".into()), false, 1, false));
    for (continued, accounts, server) in [(false, 1, false), (false, 3, true), (true, 2, false)] {
        assert!(!marks(&Conversation::Ephemeral, continued, accounts, server), "a chat that is not kept");
    }
}
