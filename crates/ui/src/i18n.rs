//! Translation: page phrases by their English text, Kratos messages by their numeric id.
//!
//! Key decision: the English text is the message key (gettext style), so English needs no
//! catalog, templates stay readable (`{{ t("Sign in") }}`), and text that has no translation —
//! a free-text reason from the identity server, a label taken from the identity schema —
//! passes through unchanged. Kratos messages are translated by id, with `{placeholders}` filled
//! from the message's `context`; a message whose id or context is unknown keeps Kratos' own
//! English text. The locale comes from `Accept-Language` once per request ([`scope`]).

use std::future::Future;

use serde_json::Value;

use crate::node::UiText;

/// The languages the pages speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Locale {
    /// English (the identity server's own language).
    #[default]
    En,
    /// German.
    De,
}

tokio::task_local! {
    static CURRENT: Locale;
}

/// Runs `future` (a request's handling) with `locale` as [`current`].
pub async fn scope<F: Future>(locale: Locale, future: F) -> F::Output {
    CURRENT.scope(locale, future).await
}

/// The locale of the request being handled (English outside [`scope`]).
pub fn current() -> Locale {
    CURRENT.try_with(|locale| *locale).unwrap_or_default()
}

impl Locale {
    /// The BCP 47 tag, for `<html lang>`.
    pub fn tag(self) -> &'static str {
        match self {
            Locale::En => "en",
            Locale::De => "de",
        }
    }

    /// The locale for a tag such as `de` or `de-AT`.
    pub fn from_tag(tag: &str) -> Option<Locale> {
        let primary = tag.split(['-', '_']).next().unwrap_or_default();
        if primary.eq_ignore_ascii_case("en") {
            Some(Locale::En)
        } else if primary.eq_ignore_ascii_case("de") {
            Some(Locale::De)
        } else {
            None
        }
    }

    /// The preferred supported language of an `Accept-Language` header (English by default).
    pub fn negotiate(accept_language: Option<&str>) -> Locale {
        let mut best: Option<(f32, Locale)> = None;
        for range in accept_language.unwrap_or_default().split(',') {
            let mut parts = range.split(';');
            let Some(locale) = parts.next().and_then(|tag| Locale::from_tag(tag.trim())) else {
                continue;
            };
            let quality = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            if quality > 0.0 && best.is_none_or(|(q, _)| quality > q) {
                best = Some((quality, locale));
            }
        }
        best.map(|(_, locale)| locale).unwrap_or_default()
    }

    /// A page phrase, keyed by its English text; unknown text is returned unchanged.
    pub fn phrase(self, english: &str) -> &str {
        let catalog = match self {
            Locale::En => return english,
            Locale::De => GERMAN_PHRASES,
        };
        catalog
            .iter()
            .find(|(en, _)| *en == english)
            .map(|(_, translated)| *translated)
            .unwrap_or(english)
    }

    /// A Kratos message in this language.
    pub fn message(self, text: &UiText) -> String {
        let catalog = match self {
            Locale::En => return text.text.clone(),
            Locale::De => GERMAN_MESSAGES,
        };
        catalog
            .iter()
            .find(|(id, _)| *id == text.id)
            .and_then(|(_, template)| fill(template, text.context.as_ref()))
            .unwrap_or_else(|| text.text.clone())
    }
}

/// Replaces `{name}` with `context.name`; `None` when a placeholder has no value.
fn fill(template: &str, context: Option<&Value>) -> Option<String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}')? + start;
        let value = context?.get(&rest[start + 1..end])?;
        match value {
            Value::String(s) => out.push_str(s),
            Value::Number(n) => out.push_str(&n.to_string()),
            Value::Bool(b) => out.push_str(&b.to_string()),
            _ => return None,
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// Page phrases: English → German.
const GERMAN_PHRASES: &[(&str, &str)] = &[
    ("Skip to content", "Zum Inhalt springen"),
    ("Sign in", "Anmelden"),
    ("Sign up", "Registrieren"),
    ("Confirm it's you", "Bestätigen Sie, dass Sie es sind"),
    (
        "Please sign in again to continue.",
        "Bitte melden Sie sich erneut an, um fortzufahren.",
    ),
    ("Second factor", "Zweiter Faktor"),
    (
        "Complete the second authentication challenge.",
        "Schließen Sie die zweite Authentifizierung ab.",
    ),
    ("Create an account", "Konto erstellen"),
    ("Recover your account", "Konto wiederherstellen"),
    (
        "Enter the email address of your account to receive a recovery code.",
        "Geben Sie die E-Mail-Adresse Ihres Kontos ein, um einen Wiederherstellungscode zu erhalten.",
    ),
    ("Verify your email address", "E-Mail-Adresse bestätigen"),
    ("Account settings", "Kontoeinstellungen"),
    ("Something is not working?", "Funktioniert etwas nicht?"),
    ("Log out", "Abmelden"),
    ("Don't have an account?", "Noch kein Konto?"),
    ("Forgot your password?", "Passwort vergessen?"),
    ("Already have an account?", "Sie haben bereits ein Konto?"),
    (
        "Remember your credentials?",
        "Zugangsdaten wieder eingefallen?",
    ),
    ("Back to the start page", "Zurück zur Startseite"),
    (
        "Haven't verified your email address yet?",
        "E-Mail-Adresse noch nicht bestätigt?",
    ),
    ("Verify it now", "Jetzt bestätigen"),
    ("Verified", "Bestätigt"),
    ("Verification", "Bestätigung"),
    ("Continue", "Weiter"),
    ("Not verified", "Nicht bestätigt"),
    ("Other options", "Weitere Möglichkeiten"),
    ("or", "oder"),
    ("Profile", "Profil"),
    ("Change password", "Passwort ändern"),
    ("Linked accounts", "Verknüpfte Konten"),
    ("Authenticator app", "Authenticator-App"),
    ("Backup recovery codes", "Wiederherstellungscodes"),
    ("Hardware security keys", "Hardware-Sicherheitsschlüssel"),
    ("Passkeys", "Passkeys"),
    ("Sign-in codes", "Anmeldecodes"),
    ("Welcome", "Willkommen"),
    ("Welcome back", "Willkommen zurück"),
    ("You are signed in as", "Sie sind angemeldet als"),
    ("You are not signed in.", "Sie sind nicht angemeldet."),
    ("Identity ID", "Identitäts-ID"),
    ("Assurance level", "Sicherheitsstufe"),
    ("Signed in with", "Angemeldet mit"),
    ("Signed in at", "Angemeldet um"),
    ("Session expires", "Sitzung läuft ab"),
    ("Account", "Konto"),
    ("Status", "Status"),
    ("Error", "Fehler"),
    ("Cause", "Ursache"),
    ("Next steps", "Nächste Schritte"),
    ("Try again", "Erneut versuchen"),
    ("Go to the start page", "Zur Startseite"),
    ("Page not found", "Seite nicht gefunden"),
    (
        "There is no page at this address.",
        "Unter dieser Adresse gibt es keine Seite.",
    ),
    (
        "The identity server is not reachable",
        "Der Identitätsserver ist nicht erreichbar",
    ),
    (
        "This page needs the identity server, which did not answer. Make sure it is running, then try again.",
        "Diese Seite benötigt den Identitätsserver, der nicht geantwortet hat. Stellen Sie sicher, dass er läuft, und versuchen Sie es erneut.",
    ),
    (
        "Unexpected answer from the identity server",
        "Unerwartete Antwort des Identitätsservers",
    ),
    (
        "The identity server sent a response this page cannot use.",
        "Der Identitätsserver hat eine Antwort gesendet, die diese Seite nicht verwenden kann.",
    ),
    (
        "The identity server reported an error",
        "Der Identitätsserver hat einen Fehler gemeldet",
    ),
    ("Something went wrong", "Etwas ist schiefgelaufen"),
    ("No error to show", "Kein Fehler vorhanden"),
    (
        "This page shows errors from sign-in and sign-up, but no error id was given.",
        "Diese Seite zeigt Fehler bei Anmeldung und Registrierung an, aber es wurde keine Fehler-ID angegeben.",
    ),
    ("Error not found", "Fehler nicht gefunden"),
    (
        "This error report does not exist or is no longer available.",
        "Dieser Fehlerbericht existiert nicht oder ist nicht mehr verfügbar.",
    ),
    ("Unusable redirect", "Unbrauchbare Weiterleitung"),
    ("Your sessions", "Ihre Sitzungen"),
    ("This browser", "Dieser Browser"),
    ("Other sessions", "Andere Sitzungen"),
    ("Device", "Gerät"),
    ("IP address", "IP-Adresse"),
    ("Sign out", "Abmelden"),
    (
        "Sign out all other sessions",
        "Alle anderen Sitzungen abmelden",
    ),
    (
        "You are not signed in anywhere else.",
        "Sie sind nirgendwo sonst angemeldet.",
    ),
    (
        "The session was signed out.",
        "Die Sitzung wurde abgemeldet.",
    ),
    (
        "All other sessions were signed out.",
        "Alle anderen Sitzungen wurden abgemeldet.",
    ),
    ("Request refused", "Anfrage abgelehnt"),
    (
        "Sessions can only be signed out from this site's own sessions page.",
        "Sitzungen können nur auf der Sitzungsseite dieser Website abgemeldet werden.",
    ),
    ("Unknown device", "Unbekanntes Gerät"),
    ("This link does not work", "Dieser Link funktioniert nicht"),
    (
        "The address you followed is incomplete or broken. Start again to get a fresh form.",
        "Die aufgerufene Adresse ist unvollständig oder fehlerhaft. Beginnen Sie neu, um ein frisches Formular zu erhalten.",
    ),
    (
        "The identity server asked to send you to an address that is not a valid URL.",
        "Der Identitätsserver wollte Sie an eine Adresse weiterleiten, die keine gültige URL ist.",
    ),
];

/// Kratos messages by id (text/message_*.go): German templates with Kratos' context keys.
const GERMAN_MESSAGES: &[(i64, &str)] = &[
    (1010001, "Anmelden"),
    (1010002, "Mit {provider} anmelden"),
    (
        1010003,
        "Bitte bestätigen Sie diese Aktion, indem Sie nachweisen, dass Sie es sind.",
    ),
    (
        1010004,
        "Bitte schließen Sie die zweite Authentifizierung ab.",
    ),
    (1010013, "Weiter"),
    (
        1010014,
        "Ein Code wurde an die angegebene Adresse gesendet. Falls Sie keine E-Mail erhalten haben, prüfen Sie die Schreibweise der Adresse.",
    ),
    (1010015, "Anmeldecode senden"),
    (1010022, "Mit Passwort anmelden"),
    (1040001, "Registrieren"),
    (1040002, "Mit {provider} registrieren"),
    (1040006, "Registrierungscode senden"),
    (1040008, "Zurück"),
    (1050001, "Ihre Änderungen wurden gespeichert!"),
    (
        1060003,
        "Eine E-Mail mit einem Wiederherstellungscode wurde an die angegebene E-Mail-Adresse gesendet. Falls Sie keine E-Mail erhalten haben, prüfen Sie die Schreibweise der Adresse.",
    ),
    (1070001, "Passwort"),
    (1070003, "Speichern"),
    (1070004, "ID"),
    (1070005, "Absenden"),
    (1070007, "E-Mail"),
    (1070008, "Code erneut senden"),
    (1070009, "Weiter"),
    (1070010, "Wiederherstellungscode"),
    (1070011, "Bestätigungscode"),
    (
        1080002,
        "Sie haben Ihre E-Mail-Adresse erfolgreich bestätigt.",
    ),
    (
        1080003,
        "Eine E-Mail mit einem Bestätigungscode wurde an die angegebene E-Mail-Adresse gesendet. Falls Sie keine E-Mail erhalten haben, prüfen Sie die Schreibweise der Adresse.",
    ),
    (4000002, "Die Eigenschaft {property} fehlt."),
    (
        4000003,
        "Die Länge muss mindestens {min_length} betragen, ist aber {actual_length}.",
    ),
    (
        4000006,
        "Die angegebenen Zugangsdaten sind ungültig. Prüfen Sie die Schreibweise von Passwort, Benutzername, E-Mail-Adresse oder Telefonnummer.",
    ),
    (
        4000007,
        "Ein Konto mit derselben Kennung (E-Mail, Telefon, Benutzername, …) existiert bereits.",
    ),
    (
        4000010,
        "Konto noch nicht aktiv. Haben Sie vergessen, Ihre E-Mail-Adresse zu bestätigen?",
    ),
    (
        4000031,
        "Das Passwort kann nicht verwendet werden, weil es der Kennung zu ähnlich ist.",
    ),
    (
        4000032,
        "Das Passwort muss mindestens {min_length} Zeichen lang sein, hat aber {actual_length}.",
    ),
    (
        4000034,
        "Das Passwort wurde in Datenlecks gefunden und darf nicht mehr verwendet werden.",
    ),
    (
        4000037,
        "Dieses Konto existiert nicht oder hat keine Anmeldemethode.",
    ),
    (4000040, "Geben Sie eine gültige E-Mail-Adresse ein"),
    (
        4060006,
        "Der Wiederherstellungscode ist ungültig oder wurde bereits verwendet. Bitte versuchen Sie es erneut.",
    ),
    (
        4070006,
        "Der Bestätigungscode ist ungültig oder wurde bereits verwendet. Bitte versuchen Sie es erneut.",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn text(id: i64, text: &str, context: Value) -> UiText {
        UiText {
            id,
            text: text.to_string(),
            kind: "error".to_string(),
            context: Some(context),
        }
    }

    #[test]
    fn negotiates_by_quality() {
        assert_eq!(Locale::negotiate(None), Locale::En);
        assert_eq!(
            Locale::negotiate(Some("de-DE,de;q=0.9,en;q=0.8")),
            Locale::De
        );
        assert_eq!(
            Locale::negotiate(Some("fr, en;q=0.5, de;q=0.4")),
            Locale::En
        );
        assert_eq!(Locale::negotiate(Some("fr, de;q=0.1")), Locale::De);
        assert_eq!(Locale::negotiate(Some("de;q=0, *")), Locale::En);
        assert_eq!(Locale::negotiate(Some(";;,q=,é")), Locale::En);
    }

    #[test]
    fn translates_messages_by_id_with_context() {
        let short = text(
            4000032,
            "The password must be at least 8 characters long, but got 3.",
            json!({"min_length": 8, "actual_length": 3}),
        );
        assert_eq!(
            Locale::De.message(&short),
            "Das Passwort muss mindestens 8 Zeichen lang sein, hat aber 3."
        );
        assert_eq!(Locale::En.message(&short), short.text);
        // Missing context or unknown ids keep Kratos' English.
        let bare = text(4000032, "english", json!({}));
        assert_eq!(Locale::De.message(&bare), "english");
        let unknown = text(9999999, "as sent", json!({}));
        assert_eq!(Locale::De.message(&unknown), "as sent");
    }

    #[test]
    fn phrases_fall_back_to_their_english_key() {
        assert_eq!(Locale::De.phrase("Sign in"), "Anmelden");
        assert_eq!(
            Locale::De.phrase("reason from the server"),
            "reason from the server"
        );
        assert_eq!(Locale::En.phrase("Sign in"), "Sign in");
    }
}
