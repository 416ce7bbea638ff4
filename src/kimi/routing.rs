//! Conversation routing: the accounts a request may run on, and which one a kept conversation
//! lives on (its id, as the client sees it, carries the account's fingerprint; see `pool.rs`).
//! [`route`] and [`marks`] decide, without I/O, and are tested below.

use std::sync::Arc;

use super::pool::{self, Credential};
use super::{Backend, Error, Kimi};
use crate::chat::{self, Conversation, Ended, Sink};

impl Kimi {
    pub(super) fn chat_on_pool(
        &self,
        credential: Credential<'_>,
        request: &chat::Request,
        sink: &mut dyn Sink,
    ) -> (Backend, Result<Ended, Error>) {
        let (accounts, continued) = match self.accounts_for(credential, &request.conversation) {
            Ok(route) => route,
            Err(error) => return (Backend::None, Err(error)),
        };
        // A conversation's id names its account whenever there was a choice: when it came
        // marked, when the caller has several accounts, and always for the server's pool.
        let mark =
            marks(&request.conversation, continued.is_some(), accounts.len(), self.pool.is_server_pool());
        let stripped;
        let request = match continued {
            Some(chat_id) => {
                stripped = chat::Request { conversation: Conversation::Continue(chat_id), ..request.clone() };
                &stripped
            }
            None => request,
        };
        self.attempts(&accounts, request, mark, sink)
    }

    /// Deletes a kept conversation (as its id came back to the client) on the account it lives
    /// on: an agent session that ends or rotates (`src/server/sessions.rs`).
    pub(super) fn delete_kept(&self, credential: Credential<'_>, id: &str) -> Result<(), Error> {
        let conversation = Conversation::Continue(id.to_string());
        let (accounts, chat_id) = self.accounts_for(credential, &conversation)?;
        let account = accounts.first().ok_or_else(|| Error::NotFound(format!("conversation {id}")))?;
        let account = self.account(account.token())?;
        self.delete_chat(&account, chat_id.as_deref().unwrap_or(id))
    }

    /// Whether a kept conversation should take its next turn on its own account: yes unless that
    /// account is gone, dead, cooling down or out of credits while another of the caller's
    /// accounts is ready (an agent session then moves there with its whole history).
    pub(super) fn stays_on_its_account(&self, credential: Credential<'_>, id: &str) -> bool {
        let Ok((home, _)) = self.accounts_for(credential, &Conversation::Continue(id.to_string())) else {
            return false;
        };
        let Some(home) = home.first().filter(|home| !self.pool.ready(home)) else { return true };
        let others = self.pool.accounts(credential);
        !others.iter().any(|other| !Arc::ptr_eq(other, home) && self.pool.ready(other))
    }

    /// The accounts a request may run on, and, for a kept conversation, Kimi's id of it: the
    /// conversation continues on the account whose fingerprint its id carries.
    fn accounts_for(
        &self,
        credential: Credential<'_>,
        conversation: &Conversation,
    ) -> Result<(Vec<Arc<pool::Account>>, Option<String>), Error> {
        route(self.pool.accounts(credential), credential, conversation)
    }
}

/// [`Kimi::accounts_for`] once the credential's accounts are known.
fn route(
    accounts: Vec<Arc<pool::Account>>,
    credential: Credential<'_>,
    conversation: &Conversation,
) -> Result<(Vec<Arc<pool::Account>>, Option<String>), Error> {
    if accounts.is_empty() {
        return Err(match credential {
            Credential::Tokens(_) => Error::Unauthorized("no Kimi token was given".into()),
            Credential::Pool => Error::Overloaded("the server's pool has no Kimi account".into(), None),
        });
    }
    let Conversation::Continue(id) = conversation else { return Ok((accounts, None)) };
    match pool::split_conversation(id) {
        Some((chat_id, fingerprint)) => {
            let account = accounts.into_iter().find(|a| a.fingerprint() == fingerprint).ok_or_else(|| {
                Error::NotFound(format!(
                    "conversation {id} lives on Kimi account {fingerprint}, which is not in this \
                     server's pool (any more); start a new conversation"
                ))
            })?;
            Ok((vec![account], Some(chat_id.to_string())))
        }
        None if accounts.len() == 1 => Ok((accounts, None)),
        None => Err(Error::NotFound(format!(
            "conversation {id} does not say which Kimi account it lives on (it was not started \
             through this pool); continue it with the one token that started it, or start a new one"
        ))),
    }
}

/// Whether a conversation's id names its account: whenever there was a choice, that is when it
/// came marked, when the caller has several accounts, and always for the server's pool; never
/// for a conversation that is not kept.
fn marks(conversation: &Conversation, continued: bool, accounts: usize, server_pool: bool) -> bool {
    *conversation != Conversation::Ephemeral && (continued || accounts > 1 || server_pool)
}

#[cfg(test)]
#[path = "routing_tests.rs"]
mod tests;
