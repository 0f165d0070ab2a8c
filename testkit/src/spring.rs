//! The messages Redrive exists for: what Spring AMQP's
//! `RepublishMessageRecoverer` leaves on an error queue after retries run
//! out, a JSON order plus the exception headers and a stack trace.

use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::BasicProperties;

/// Where the failed messages were originally published, as
/// `x-original-exchange` and `x-original-routingKey` say.
pub const EXCHANGE: &str = "orders";
pub const ROUTING_KEY: &str = "order.created";

/// One failure, described before it is built. [`failure`] is the usual
/// one; the builder makes the variants tests and fault scenarios need.
#[derive(Debug, Clone)]
pub struct Failure {
    /// Written into the body as `"seq"`, the message id and the exception
    /// text, so each failure can be told apart; `None` makes every copy
    /// byte-identical (Spring sets no message id).
    pub seq: Option<u64>,
    /// The body's length, about (at least the order's head).
    pub body_len: usize,
}

impl Failure {
    /// Failure number `seq` with a 1 KiB body.
    pub fn numbered(seq: u64) -> Self {
        Self {
            seq: Some(seq),
            body_len: 1024,
        }
    }

    /// A failure every copy of which is the same bytes.
    pub fn anonymous() -> Self {
        Self {
            seq: None,
            body_len: 1024,
        }
    }

    pub fn body_len(mut self, len: usize) -> Self {
        self.body_len = len;
        self
    }

    /// The cause Spring puts in `x-exception-message`.
    pub fn cause(&self) -> String {
        match self.seq {
            Some(i) => format!("could not execute statement; constraint [orders_customer_fk]; order {i}"),
            None => "could not execute statement; constraint [orders_customer_fk]".to_owned(),
        }
    }

    /// The JSON order: `seq`, ids, and order lines up to `body_len`.
    pub fn body(&self) -> Vec<u8> {
        let i = self.seq.unwrap_or(0);
        let seq = self.seq.map_or("null".to_owned(), |s| s.to_string());
        let mut b = format!(
            r#"{{"seq":{seq},"orderId":"ord-{i:08}","customerId":"cust-{}","currency":"EUR","lines":["#,
            i % 977
        );
        let mut line = 0;
        while b.len() + 40 < self.body_len {
            b.push_str(&format!(
                r#"{{"sku":"SKU-{line:04}","qty":{},"price":"{}.99"}},"#,
                line % 5 + 1,
                line * 3 + 7
            ));
            line += 1;
        }
        if line > 0 {
            b.pop();
        }
        b.push_str("]}");
        b.into_bytes()
    }

    /// The headers and properties the recoverer republishes with:
    /// persistent JSON, the exception's message and stack trace, and where
    /// the message was first published.
    pub fn properties(&self) -> BasicProperties {
        let mut h = FieldTable::default();
        h.insert(ShortString::from("x-exception-message"), text(&self.cause()));
        h.insert(
            ShortString::from("x-exception-stacktrace"),
            text(&stack_trace(&self.cause())),
        );
        h.insert(ShortString::from("x-original-exchange"), text(EXCHANGE));
        h.insert(ShortString::from("x-original-routingKey"), text(ROUTING_KEY));
        let props = BasicProperties::default()
            .with_content_type(ShortString::from("application/json"))
            .with_delivery_mode(2)
            .with_headers(h);
        match self.seq {
            Some(i) => props.with_message_id(ShortString::from(format!("ord-{i:08}"))),
            None => props,
        }
    }

    pub fn build(&self) -> (Vec<u8>, BasicProperties) {
        (self.body(), self.properties())
    }
}

/// Failure number `i`, 1 KiB: body and properties as the recoverer
/// republishes them.
pub fn failure(i: usize) -> (Vec<u8>, BasicProperties) {
    Failure::numbered(i as u64).build()
}

/// The `"seq"` a failure's body carries, if it is one of these.
pub fn seq_of(body: &[u8]) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v["seq"].as_u64()
}

/// A 2 KiB trace as Spring's `x-exception-stacktrace` carries one: the
/// listener's exception, the cause, and the frames between.
pub fn stack_trace(cause: &str) -> String {
    let mut t = format!(
        "org.springframework.amqp.rabbit.support.ListenerExecutionFailedException: Listener method \
         'public void com.example.orders.OrderListener.onOrder(com.example.orders.Order)' threw exception\n\
         \tat org.springframework.amqp.rabbit.listener.adapter.MessagingMessageListenerAdapter.invokeHandler(MessagingMessageListenerAdapter.java:270)\n\
         Caused by: org.springframework.dao.DataIntegrityViolationException: {cause}\n"
    );
    for frame in [
        "org.hibernate.exception.ConstraintViolationException.<init>(ConstraintViolationException.java:59)",
        "org.hibernate.engine.jdbc.spi.SqlExceptionHelper.convert(SqlExceptionHelper.java:113)",
        "org.hibernate.engine.jdbc.internal.ResultSetReturnImpl.executeUpdate(ResultSetReturnImpl.java:197)",
        "com.example.orders.OrderRepository.save(OrderRepository.java:42)",
        "com.example.orders.OrderService.place(OrderService.java:88)",
        "com.example.orders.OrderListener.onOrder(OrderListener.java:31)",
        "org.springframework.amqp.rabbit.listener.AbstractMessageListenerContainer.doInvokeListener(AbstractMessageListenerContainer.java:1569)",
        "org.springframework.amqp.rabbit.listener.AbstractMessageListenerContainer.actualInvokeListener(AbstractMessageListenerContainer.java:1488)",
        "org.springframework.amqp.rabbit.listener.SimpleMessageListenerContainer.doReceiveAndExecute(SimpleMessageListenerContainer.java:1037)",
        "org.springframework.amqp.rabbit.listener.SimpleMessageListenerContainer.receiveAndExecute(SimpleMessageListenerContainer.java:983)",
        "java.base/java.lang.Thread.run(Thread.java:833)",
    ] {
        t.push_str("\tat ");
        t.push_str(frame);
        t.push('\n');
    }
    t
}

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.as_bytes().to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_json_of_the_asked_length_and_carry_their_number() {
        let f = Failure::numbered(42);
        let body = f.body();
        assert!((984..=1024).contains(&body.len()), "{}", body.len());
        assert_eq!(seq_of(&body), Some(42));
        let small = Failure::numbered(7).body_len(0).body();
        assert_eq!(seq_of(&small), Some(7));
        assert_eq!(Failure::anonymous().build().0, Failure::anonymous().build().0);
        assert!(Failure::anonymous().properties().message_id().is_none());
    }
}
