//! The messages Redrive exists for: what Spring AMQP's
//! `RepublishMessageRecoverer` leaves on an error queue after retries run
//! out, a 1 KiB JSON order plus the exception headers and a stack trace.

use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::BasicProperties;

/// Where the failed messages were originally published.
pub const EXCHANGE: &str = "orders";
pub const ROUTING_KEY: &str = "order.created";

fn stack_trace(i: usize) -> String {
    let mut t = format!(
        "org.springframework.amqp.rabbit.support.ListenerExecutionFailedException: Listener method \
         'public void com.example.orders.OrderListener.onOrder(com.example.orders.Order)' threw exception\n\
         \tat org.springframework.amqp.rabbit.listener.adapter.MessagingMessageListenerAdapter.invokeHandler(MessagingMessageListenerAdapter.java:270)\n\
         Caused by: org.springframework.dao.DataIntegrityViolationException: could not execute statement; \
         constraint [orders_customer_fk]; order {i}\n"
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

/// A 1 KiB JSON order.
fn body(i: usize) -> Vec<u8> {
    let mut b = format!(
        r#"{{"orderId":"ord-{i:08}","customerId":"cust-{}","currency":"EUR","lines":["#,
        i % 977
    );
    let mut line = 0;
    while b.len() < 960 {
        b.push_str(&format!(
            r#"{{"sku":"SKU-{line:04}","qty":{},"price":"{}.99"}},"#,
            line % 5 + 1,
            line * 3 + 7
        ));
        line += 1;
    }
    b.pop();
    b.push_str("]}");
    b.into_bytes()
}

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.as_bytes().to_vec()))
}

/// Failure number `i`: body and properties as the recoverer republishes them.
pub fn failure(i: usize) -> (Vec<u8>, BasicProperties) {
    let mut h = FieldTable::default();
    let cause = format!("could not execute statement; constraint [orders_customer_fk]; order {i}");
    h.insert(ShortString::from("x-exception-message"), text(&cause));
    h.insert(ShortString::from("x-exception-stacktrace"), text(&stack_trace(i)));
    h.insert(ShortString::from("x-original-exchange"), text(EXCHANGE));
    h.insert(ShortString::from("x-original-routingKey"), text(ROUTING_KEY));
    let props = BasicProperties::default()
        .with_content_type(ShortString::from("application/json"))
        .with_message_id(ShortString::from(format!("ord-{i:08}")))
        .with_delivery_mode(2)
        .with_headers(h);
    (body(i), props)
}
