//! Coefficient expressions f_c(θ): `mu`, `sqrt(mu)`, `mu - sqrt(mu)`, `1 - sqrt(mu)`, products,
//! quotients and powers of parameters, `exp`, `log`.
//!
//! Expressions are parsed once into a small tree whose parameter references are indices, so
//! evaluating them inside a fit costs a few dozen flops. Derivatives are taken symbolically
//! ([`Expr::derivative`]) once when the model is built, which gives exact gradients and
//! Hessians of the likelihood without finite differences.

use std::fmt;

/// A parsed expression; `Param(i)` refers to the i-th parameter of the workspace.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Const(f64),
    Param(usize),
    Neg(Box<Expr>),
    Add(Box<Expr>, Box<Expr>),
    Sub(Box<Expr>, Box<Expr>),
    Mul(Box<Expr>, Box<Expr>),
    Div(Box<Expr>, Box<Expr>),
    /// Power with a constant exponent (the only kind physics coefficients need).
    Pow(Box<Expr>, f64),
    Sqrt(Box<Expr>),
    Exp(Box<Expr>),
    Log(Box<Expr>),
}

/// Why an expression could not be parsed; `position` is the 0-based character offset.
#[derive(Clone, Debug, PartialEq)]
pub struct ParseError {
    pub position: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at character {})", self.message, self.position + 1)
    }
}

/// The most tokens an expression may have. Parsing, evaluating and differentiating recurse
/// once per level of the tree, so a limit on its size keeps a pathological coefficient (a
/// hundred thousand nested parentheses) from overflowing the stack; physics coefficients
/// have a few dozen tokens.
const MAX_TOKENS: usize = 1000;

impl Expr {
    /// Parses `text`, resolving identifiers against `parameters` (their index is the position
    /// in that slice).
    pub fn parse(text: &str, parameters: &[&str]) -> Result<Expr, ParseError> {
        let tokens = tokenize(text)?;
        if let Some((at, _)) = tokens.get(MAX_TOKENS) {
            return Err(ParseError {
                position: *at,
                message: format!(
                    "expression too long ({} tokens; at most {MAX_TOKENS}): write it shorter",
                    tokens.len()
                ),
            });
        }
        let mut parser = Parser {
            tokens,
            pos: 0,
            parameters,
            end: text.chars().count(),
        };
        let expr = parser.sum()?;
        match parser.peek() {
            None => Ok(expr),
            Some((at, tok)) => Err(ParseError {
                position: at,
                message: format!("unexpected {tok} after a complete expression"),
            }),
        }
    }

    /// The value at parameter point `theta`.
    pub fn eval(&self, theta: &[f64]) -> f64 {
        match self {
            Expr::Const(c) => *c,
            Expr::Param(i) => theta[*i],
            Expr::Neg(a) => -a.eval(theta),
            Expr::Add(a, b) => a.eval(theta) + b.eval(theta),
            Expr::Sub(a, b) => a.eval(theta) - b.eval(theta),
            Expr::Mul(a, b) => a.eval(theta) * b.eval(theta),
            Expr::Div(a, b) => a.eval(theta) / b.eval(theta),
            Expr::Pow(a, p) => a.eval(theta).powf(*p),
            Expr::Sqrt(a) => a.eval(theta).sqrt(),
            Expr::Exp(a) => a.eval(theta).exp(),
            Expr::Log(a) => a.eval(theta).ln(),
        }
    }

    /// Indices of the parameters the expression depends on, sorted and unique.
    pub fn parameters(&self) -> Vec<usize> {
        let mut out = Vec::new();
        self.collect_parameters(&mut out);
        out.sort_unstable();
        out.dedup();
        out
    }

    fn collect_parameters(&self, out: &mut Vec<usize>) {
        match self {
            Expr::Const(_) => {}
            Expr::Param(i) => out.push(*i),
            Expr::Neg(a) | Expr::Pow(a, _) | Expr::Sqrt(a) | Expr::Exp(a) | Expr::Log(a) => {
                a.collect_parameters(out)
            }
            Expr::Add(a, b) | Expr::Sub(a, b) | Expr::Mul(a, b) | Expr::Div(a, b) => {
                a.collect_parameters(out);
                b.collect_parameters(out);
            }
        }
    }

    /// The same expression with parameter `i` renamed `map[i]` (a model placed on a larger
    /// parameter vector).
    pub fn map_parameters(&self, map: &[usize]) -> Expr {
        let m = |e: &Expr| Box::new(e.map_parameters(map));
        match self {
            Expr::Const(c) => Expr::Const(*c),
            Expr::Param(i) => Expr::Param(map[*i]),
            Expr::Neg(a) => Expr::Neg(m(a)),
            Expr::Add(a, b) => Expr::Add(m(a), m(b)),
            Expr::Sub(a, b) => Expr::Sub(m(a), m(b)),
            Expr::Mul(a, b) => Expr::Mul(m(a), m(b)),
            Expr::Div(a, b) => Expr::Div(m(a), m(b)),
            Expr::Pow(a, p) => Expr::Pow(m(a), *p),
            Expr::Sqrt(a) => Expr::Sqrt(m(a)),
            Expr::Exp(a) => Expr::Exp(m(a)),
            Expr::Log(a) => Expr::Log(m(a)),
        }
    }

    /// The parameters of a plain product `a * b * …` of parameters (each once), or `None`
    /// for any other expression: the coefficients a HistFactory model writes as normfactors.
    pub fn product_of_parameters(&self) -> Option<Vec<usize>> {
        let mut factors = Vec::new();
        let mut stack = vec![self];
        while let Some(e) = stack.pop() {
            match e {
                Expr::Param(i) if !factors.contains(i) => factors.push(*i),
                Expr::Mul(a, b) => stack.extend([b.as_ref(), a.as_ref()]),
                _ => return None,
            }
        }
        Some(factors)
    }

    /// The symbolic derivative with respect to parameter `k`, with constants folded.
    pub fn derivative(&self, k: usize) -> Expr {
        use Expr::*;
        let d = |e: &Expr| e.derivative(k);
        match self {
            Const(_) => Const(0.0),
            Param(i) => Const(if *i == k { 1.0 } else { 0.0 }),
            Neg(a) => neg(d(a)),
            Add(a, b) => add(d(a), d(b)),
            Sub(a, b) => sub(d(a), d(b)),
            Mul(a, b) => add(mul(d(a), (**b).clone()), mul((**a).clone(), d(b))),
            Div(a, b) => {
                // (a/b)' = a'/b − a b' / b²
                let first = div(d(a), (**b).clone());
                let second = div(mul((**a).clone(), d(b)), pow((**b).clone(), 2.0));
                sub(first, second)
            }
            Pow(a, p) => mul(mul(Const(*p), pow((**a).clone(), p - 1.0)), d(a)),
            Sqrt(a) => div(d(a), mul(Const(2.0), Sqrt(a.clone()))),
            Exp(a) => mul(Exp(a.clone()), d(a)),
            Log(a) => div(d(a), (**a).clone()),
        }
    }
}

// Smart constructors that fold constants, so derivatives of `1 - sqrt(mu)` stay small.
fn neg(a: Expr) -> Expr {
    match a {
        Expr::Const(c) => Expr::Const(-c),
        a => Expr::Neg(Box::new(a)),
    }
}
fn add(a: Expr, b: Expr) -> Expr {
    match (a, b) {
        (Expr::Const(x), Expr::Const(y)) => Expr::Const(x + y),
        (Expr::Const(0.0), e) | (e, Expr::Const(0.0)) => e,
        (a, b) => Expr::Add(Box::new(a), Box::new(b)),
    }
}
fn sub(a: Expr, b: Expr) -> Expr {
    match (a, b) {
        (Expr::Const(x), Expr::Const(y)) => Expr::Const(x - y),
        (e, Expr::Const(0.0)) => e,
        (Expr::Const(0.0), e) => neg(e),
        (a, b) => Expr::Sub(Box::new(a), Box::new(b)),
    }
}
fn mul(a: Expr, b: Expr) -> Expr {
    match (a, b) {
        (Expr::Const(x), Expr::Const(y)) => Expr::Const(x * y),
        (Expr::Const(z), _) | (_, Expr::Const(z)) if z == 0.0 => Expr::Const(0.0),
        (Expr::Const(1.0), e) | (e, Expr::Const(1.0)) => e,
        (a, b) => Expr::Mul(Box::new(a), Box::new(b)),
    }
}
fn div(a: Expr, b: Expr) -> Expr {
    match (a, b) {
        (Expr::Const(0.0), _) => Expr::Const(0.0),
        (e, Expr::Const(1.0)) => e,
        (a, b) => Expr::Div(Box::new(a), Box::new(b)),
    }
}
fn pow(a: Expr, p: f64) -> Expr {
    match a {
        _ if p == 0.0 => Expr::Const(1.0),
        a if p == 1.0 => a,
        Expr::Const(c) => Expr::Const(c.powf(p)),
        a => Expr::Pow(Box::new(a), p),
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Number(f64),
    Ident(String),
    Op(char),
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Number(x) => write!(f, "number {x}"),
            Token::Ident(s) => write!(f, "'{s}'"),
            Token::Op(c) => write!(f, "'{c}'"),
        }
    }
}

fn tokenize(text: &str) -> Result<Vec<(usize, Token)>, ParseError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() || c == '.' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            // Exponent part: 1e-3, 2.5E+2
            if i < chars.len() && (chars[i] == 'e' || chars[i] == 'E') {
                let mut j = i + 1;
                if j < chars.len() && (chars[j] == '+' || chars[j] == '-') {
                    j += 1;
                }
                if j < chars.len() && chars[j].is_ascii_digit() {
                    i = j;
                    while i < chars.len() && chars[i].is_ascii_digit() {
                        i += 1;
                    }
                }
            }
            let literal: String = chars[start..i].iter().collect();
            let value = literal.parse::<f64>().map_err(|_| ParseError {
                position: start,
                message: format!("'{literal}' is not a number"),
            })?;
            tokens.push((start, Token::Number(value)));
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            tokens.push((start, Token::Ident(chars[start..i].iter().collect())));
        } else if c == '*' && chars.get(i + 1) == Some(&'*') {
            tokens.push((i, Token::Op('^')));
            i += 2;
        } else if "+-*/^()".contains(c) {
            tokens.push((i, Token::Op(c)));
            i += 1;
        } else {
            return Err(ParseError {
                position: i,
                message: format!("unexpected character '{c}'"),
            });
        }
    }
    Ok(tokens)
}

/// Recursive descent: sum → product → unary → power → atom. `^` binds tighter than unary
/// minus (`-mu^2` is −(μ²)), as in mathematics.
struct Parser<'a> {
    tokens: Vec<(usize, Token)>,
    pos: usize,
    parameters: &'a [&'a str],
    end: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<(usize, &Token)> {
        self.tokens.get(self.pos).map(|(at, t)| (*at, t))
    }

    fn next(&mut self) -> Option<(usize, Token)> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn eat(&mut self, op: char) -> bool {
        if matches!(self.peek(), Some((_, Token::Op(c))) if *c == op) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn sum(&mut self) -> Result<Expr, ParseError> {
        let mut lhs = self.product()?;
        loop {
            if self.eat('+') {
                lhs = Expr::Add(Box::new(lhs), Box::new(self.product()?));
            } else if self.eat('-') {
                lhs = Expr::Sub(Box::new(lhs), Box::new(self.product()?));
            } else {
                return Ok(lhs);
            }
        }
    }

    fn product(&mut self) -> Result<Expr, ParseError> {
        let mut lhs = self.unary()?;
        loop {
            if self.eat('*') {
                lhs = Expr::Mul(Box::new(lhs), Box::new(self.unary()?));
            } else if self.eat('/') {
                lhs = Expr::Div(Box::new(lhs), Box::new(self.unary()?));
            } else {
                return Ok(lhs);
            }
        }
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        if self.eat('-') {
            Ok(Expr::Neg(Box::new(self.unary()?)))
        } else if self.eat('+') {
            self.unary()
        } else {
            self.power()
        }
    }

    fn power(&mut self) -> Result<Expr, ParseError> {
        let base = self.atom()?;
        if !self.eat('^') {
            return Ok(base);
        }
        let at = self.peek().map_or(self.end, |(at, _)| at);
        let exponent = self.unary()?;
        match exponent.parameters().is_empty() {
            true => Ok(Expr::Pow(Box::new(base), exponent.eval(&[]))),
            false => Err(ParseError {
                position: at,
                message: "exponents must be constant numbers".into(),
            }),
        }
    }

    fn atom(&mut self) -> Result<Expr, ParseError> {
        match self.next() {
            Some((_, Token::Number(x))) => Ok(Expr::Const(x)),
            Some((at, Token::Op('('))) => {
                let inner = self.sum()?;
                if self.eat(')') {
                    Ok(inner)
                } else {
                    Err(ParseError {
                        position: at,
                        message: "unclosed '('".into(),
                    })
                }
            }
            Some((at, Token::Ident(name))) => self.identifier(at, name),
            Some((at, tok)) => Err(ParseError {
                position: at,
                message: format!("expected a number, parameter or '(' but found {tok}"),
            }),
            None => Err(ParseError {
                position: self.end,
                message: "expression ends too early".into(),
            }),
        }
    }

    fn identifier(&mut self, at: usize, name: String) -> Result<Expr, ParseError> {
        let function: Option<fn(Box<Expr>) -> Expr> = match name.as_str() {
            "sqrt" => Some(Expr::Sqrt),
            "exp" => Some(Expr::Exp),
            "log" | "ln" => Some(Expr::Log),
            _ => None,
        };
        if let Some(make) = function {
            if !self.eat('(') {
                return Err(ParseError {
                    position: at,
                    message: format!("function '{name}' needs an argument in parentheses"),
                });
            }
            let arg = self.sum()?;
            if !self.eat(')') {
                return Err(ParseError {
                    position: at,
                    message: format!("unclosed '(' after '{name}'"),
                });
            }
            return Ok(make(Box::new(arg)));
        }
        match self.parameters.iter().position(|p| *p == name) {
            Some(i) => Ok(Expr::Param(i)),
            None => Err(ParseError {
                position: at,
                message: format!(
                    "unknown parameter '{name}' (declared parameters: {})",
                    self.parameters.join(", ")
                ),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARAMS: [&str; 2] = ["mu", "theta"];

    fn eval(text: &str, theta: &[f64]) -> f64 {
        Expr::parse(text, &PARAMS).unwrap().eval(theta)
    }

    #[test]
    fn offshell_coefficients() {
        let mu = 2.25;
        assert_eq!(eval("mu - sqrt(mu)", &[mu, 0.0]), 0.75);
        assert_eq!(eval("sqrt(mu)", &[mu, 0.0]), 1.5);
        assert_eq!(eval("1 - sqrt(mu)", &[mu, 0.0]), -0.5);
    }

    #[test]
    fn precedence_and_powers() {
        assert_eq!(eval("-mu^2", &[3.0, 0.0]), -9.0);
        assert_eq!(eval("2*mu**2 + theta/4", &[3.0, 2.0]), 18.5);
        assert_eq!(eval("(1 + mu) * (1 - theta)", &[1.0, 3.0]), -4.0);
        assert_eq!(eval("mu^-1", &[4.0, 0.0]), 0.25);
        assert_eq!(eval("1.5e-1 * mu", &[2.0, 0.0]), 0.3);
    }

    #[test]
    fn derivatives_match_finite_differences() {
        let texts = [
            "mu - sqrt(mu)",
            "1 - sqrt(mu)",
            "mu*theta^3 / (1 + mu^2)",
            "exp(theta) * log(mu)",
        ];
        let point = [1.7, 0.4];
        for text in texts {
            let e = Expr::parse(text, &PARAMS).unwrap();
            for k in 0..2 {
                let h = 1e-6;
                let mut up = point;
                let mut down = point;
                up[k] += h;
                down[k] -= h;
                let numeric = (e.eval(&up) - e.eval(&down)) / (2.0 * h);
                let exact = e.derivative(k).eval(&point);
                assert!(
                    (numeric - exact).abs() < 1e-7,
                    "{text} d/d{k}: {numeric} vs {exact}"
                );
            }
        }
    }

    #[test]
    fn unknown_parameter_names_position() {
        let err = Expr::parse("mu - sqrt(mu2)", &PARAMS).unwrap_err();
        assert_eq!(err.position, 10);
        assert!(
            err.message.contains("unknown parameter 'mu2'"),
            "{}",
            err.message
        );
    }

    #[test]
    fn malformed_expressions_are_errors() {
        for text in [
            "mu -",
            "sqrt mu",
            "(mu",
            "mu mu",
            "mu ^ theta",
            "2 $ mu",
            "",
        ] {
            assert!(
                Expr::parse(text, &PARAMS).is_err(),
                "{text} should not parse"
            );
        }
    }
}
