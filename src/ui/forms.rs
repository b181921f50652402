//! Forms on the pages, built in Rust and drawn by one template (`templates/form.html`): each
//! input with its label, the value the user typed (kept when the form comes back with an
//! error), and the error beside the field it names. A form's values reach the services as the
//! JSON body the API would receive, read by the same parsers (`api::cases::parse`,
//! `ledger_file::typed`), so a page never checks a rule the API does not.

use std::collections::BTreeMap;

use crate::api::error::ApiError;

/// One choice of a select or a group of check boxes.
pub struct OptionView {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

/// How an input is drawn.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Date,
    Month,
    TextArea,
    Select,
    Checks,
    File,
}

impl Kind {
    /// The template's name for the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::Date => "date",
            Kind::Month => "month",
            Kind::TextArea => "textarea",
            Kind::Select => "select",
            Kind::Checks => "checks",
            Kind::File => "file",
        }
    }
}

pub struct InputView {
    pub name: String,
    pub label: String,
    pub kind: &'static str,
    pub value: String,
    pub hint: String,
    pub options: Vec<OptionView>,
    pub error: Option<String>,
}

/// A form: where it posts, its inputs, hidden values, and an error not tied to one field.
pub struct FormView {
    pub id: String,
    pub title: String,
    pub action: String,
    pub multipart: bool,
    pub hidden: Vec<(String, String)>,
    pub inputs: Vec<InputView>,
    pub error: Option<String>,
    pub submit: String,
}

impl FormView {
    pub fn new(id: &str, title: &str, action: &str, submit: &str) -> Self {
        Self {
            id: id.to_owned(),
            title: title.to_owned(),
            action: action.to_owned(),
            multipart: false,
            hidden: Vec::new(),
            inputs: Vec::new(),
            error: None,
            submit: submit.to_owned(),
        }
    }

    /// The form sends a file (`multipart/form-data`).
    pub fn multipart(mut self) -> Self {
        self.multipart = true;
        self
    }

    pub fn hidden(mut self, name: &str, value: &str) -> Self {
        self.hidden.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Adds an input, its value the submitted one when the form comes back.
    pub fn input(mut self, name: &str, label: &str, kind: Kind, value: &str, hint: &str) -> Self {
        self.inputs.push(InputView {
            name: name.to_owned(),
            label: label.to_owned(),
            kind: kind.as_str(),
            value: value.to_owned(),
            hint: hint.to_owned(),
            options: Vec::new(),
            error: None,
        });
        self
    }

    /// A select (`Kind::Select`, first choice empty when `optional`) or check boxes
    /// (`Kind::Checks`) of `(value, label)` choices; `chosen` are selected.
    pub fn choice<'a>(
        mut self,
        name: &str,
        label: &str,
        kind: Kind,
        choices: impl IntoIterator<Item = (&'a str, String)>,
        chosen: &[String],
        optional: bool,
    ) -> Self {
        let mut options: Vec<OptionView> = Vec::new();
        if optional && kind == Kind::Select {
            options.push(OptionView {
                value: String::new(),
                label: "—".to_owned(),
                selected: chosen.iter().all(String::is_empty),
            });
        }
        options.extend(choices.into_iter().map(|(v, l)| OptionView {
            selected: chosen.iter().any(|c| c == v),
            value: v.to_owned(),
            label: l,
        }));
        self.inputs.push(InputView {
            name: name.to_owned(),
            label: label.to_owned(),
            kind: kind.as_str(),
            value: String::new(),
            hint: String::new(),
            options,
            error: None,
        });
        self
    }

    /// Shows `message` beside the input `field` names (its own name, or the API's member path
    /// mapped by `map`), or above the form when no input has that name.
    ///
    /// A parser that names no member (a tagged enum's fields) still names the input in its
    /// message (``missing field `reason_text` ``, `question: must not be empty`) or quotes the
    /// value typed into it.
    pub fn fail(&mut self, field: Option<&str>, message: String) {
        let named = field.and_then(|f| self.inputs.iter().position(|i| i.name == f));
        let mentioned = || {
            self.inputs.iter().position(|i| {
                message.contains(&format!("`{}`", i.name))
                    || message.starts_with(&format!("{}:", i.name))
                    || (i.value.chars().count() > 2 && message.contains(&format!("{:?}", i.value)))
            })
        };
        match named.or_else(mentioned) {
            Some(i) => self.inputs[i].error = Some(message),
            None => self.error = Some(message),
        }
    }
}

/// A filter's value as the form sent it: `None` when absent or blank.
pub fn set(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// A list page's text filter.
pub fn text_filter(name: &str, label: &str, value: &Option<String>) -> InputView {
    InputView {
        name: name.to_owned(),
        label: label.to_owned(),
        kind: Kind::Text.as_str(),
        value: set(value).unwrap_or_default(),
        hint: String::new(),
        options: Vec::new(),
        error: None,
    }
}

/// The query string of a list's next page: the filters that are set, then `after`.
pub fn next_page(filters: &[(&str, &Option<String>)], after: &str) -> String {
    let mut parts: Vec<String> = filters
        .iter()
        .filter_map(|(k, v)| set(v).map(|v| format!("{k}={}", super::render::url_encode(&v))))
        .collect();
    parts.push(format!("after={}", super::render::url_encode(after)));
    parts.join("&")
}

/// The user of a form post, allowed `permission`, and the form, its CSRF token checked: what
/// every page that changes something does first (a user without the permission gets 403, a
/// form without the session's token 403, before any field is read).
pub async fn posted_by(
    state: &actix_web::web::Data<crate::api::AppState>,
    req: &actix_web::HttpRequest,
    permission: crate::accounts::Permission,
    form: Vec<(String, String)>,
) -> Result<(crate::accounts::Principal, Posted), super::UiError> {
    let p = super::user(state, req, permission).await?;
    let posted = Posted::new(form);
    super::check_csrf(&p, posted.csrf().as_deref())?;
    Ok((p, posted))
}

/// A posted form: each name with its values in order (check boxes repeat a name).
#[derive(Default)]
pub struct Posted(BTreeMap<String, Vec<String>>);

impl Posted {
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in pairs {
            map.entry(k).or_default().push(v);
        }
        Self(map)
    }

    /// The first value of `name`, trimmed; empty when absent.
    pub fn get(&self, name: &str) -> String {
        self.0
            .get(name)
            .and_then(|v| v.first())
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    }

    /// The non-empty value of `name`, if any.
    pub fn opt(&self, name: &str) -> Option<String> {
        Some(self.get(name)).filter(|s| !s.is_empty())
    }

    /// Every non-empty value of `name`.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .get(name)
            .map(|v| {
                v.iter()
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether the form sent `name` at all.
    pub fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    pub fn csrf(&self) -> Option<String> {
        self.0.get("csrf").and_then(|v| v.first()).cloned()
    }
}

/// The first of `candidates` (member paths, most specific first) that the error's field starts
/// with, mapped to its input name.
pub fn input_for(e: &ApiError, map: &[(&str, &str)]) -> Option<String> {
    let field = e.field_name()?;
    map.iter()
        .find(|(prefix, _)| field == *prefix || field.starts_with(&format!("{prefix}.")))
        .map(|(_, input)| (*input).to_owned())
        .or_else(|| Some(field.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_go_beside_their_field() {
        let mut f = FormView::new("f", "t", "/ui/x", "ok")
            .input("name", "姓名", Kind::Text, "", "")
            .choice(
                "kind",
                "方式",
                Kind::Select,
                [("home", "入户".to_owned())],
                &["home".to_owned()],
                true,
            );
        f.fail(Some("name"), "too long".into());
        f.fail(Some("nothing"), "general".into());
        assert_eq!(f.inputs[0].error.as_deref(), Some("too long"));
        assert_eq!(f.error.as_deref(), Some("general"));
        assert!(f.inputs[1].options[1].selected);
        assert!(!f.inputs[1].options[0].selected);
        let e = ApiError::unprocessable("invalid_field", "bad").field("visitor.name");
        assert_eq!(
            input_for(&e, &[("visitor.name", "visitor_name")]).as_deref(),
            Some("visitor_name")
        );
        let p = Posted::new(vec![
            ("seen".into(), "child".into()),
            ("seen".into(), "guardian".into()),
            ("name".into(), "  李 ".into()),
        ]);
        assert_eq!(p.all("seen"), ["child", "guardian"]);
        assert_eq!(p.get("name"), "李");
        assert_eq!(p.opt("none"), None);
    }
}
