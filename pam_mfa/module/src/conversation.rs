//! Talking to the person: the PAM conversation behind one small trait, so that what the
//! module says and asks is written once, honours `PAM_SILENT` in one place, and can be
//! driven by a script in unit tests as well as by libpam.

use pam::constants::{PAM_ERROR_MSG, PAM_TEXT_INFO, PamMessageStyle, PamResultCode};
use pam::conv::Conv;
use pam::module::PamHandle;
use zeroize::Zeroizing;

/// What the person typed, wiped when dropped.
pub type Answer = Zeroizing<Vec<u8>>;

/// The other end of the conversation.
pub trait Converse {
    /// Sends one message; a prompt's answer comes back (`None`: the application gave no
    /// response at all).
    fn send(&mut self, style: PamMessageStyle, text: &str)
    -> Result<Option<Answer>, PamResultCode>;

    /// A message the login goes on without, whether or not it got through (nothing at all
    /// under `PAM_SILENT`).
    fn tell(&mut self, silent: bool, text: &str) {
        if !silent {
            let _ = self.send(PAM_TEXT_INFO, text);
        }
    }

    /// [`Self::tell`] as an error message.
    fn warn(&mut self, silent: bool, text: &str) {
        if !silent {
            let _ = self.send(PAM_ERROR_MSG, text);
        }
    }
}

impl Converse for PamHandle {
    fn send(
        &mut self,
        style: PamMessageStyle,
        text: &str,
    ) -> Result<Option<Answer>, PamResultCode> {
        // libpam's buffer is wiped when `SecretBytes` drops, right after this copy.
        let answer = self
            .get_item::<Conv>()?
            .ok_or(PamResultCode::PAM_CONV_ERR)?
            .send(style, text)?;
        Ok(answer.map(|a| Zeroizing::new(a.as_bytes().to_vec())))
    }
}

/// A scripted conversation for unit tests: answers prompts in order and records every
/// message.
#[cfg(test)]
#[derive(Default)]
pub struct Script {
    /// The answers to the prompts, in order (`None`: no response); past the end, a prompt
    /// fails as a closed conversation does.
    pub answers: std::collections::VecDeque<Option<&'static str>>,
    /// Every message, as (style, text).
    pub said: Vec<(PamMessageStyle, String)>,
}

#[cfg(test)]
impl Converse for Script {
    fn send(
        &mut self,
        style: PamMessageStyle,
        text: &str,
    ) -> Result<Option<Answer>, PamResultCode> {
        use pam::constants::{PAM_PROMPT_ECHO_OFF, PAM_PROMPT_ECHO_ON};
        self.said.push((style, text.to_owned()));
        if style == PAM_PROMPT_ECHO_OFF || style == PAM_PROMPT_ECHO_ON {
            let answer = self
                .answers
                .pop_front()
                .ok_or(PamResultCode::PAM_CONV_ERR)?;
            Ok(answer.map(|a| Zeroizing::new(a.as_bytes().to_vec())))
        } else {
            Ok(None)
        }
    }
}
