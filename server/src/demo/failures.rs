//! What the demo's services fail with: exceptions as a Spring listener
//! throws them, and the headers Spring AMQP's `RepublishMessageRecoverer`
//! adds when it moves a message to the error exchange.

use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::BasicProperties;

/// A failure a demo service can hit. Each kind has its own type, message
/// and application frames, so each forms a failure group of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exception {
    /// trade-service: a business rule.
    NoSettlementAccount,
    /// pay-service: a duplicate insert.
    DuplicatePayment,
    /// cart-service: a body it cannot read.
    UnreadableCart,
    /// notification-service: the mail relay refused.
    MailRejected,
    /// trade-service and pay-service alike: a shared client library timed
    /// out, so one group spans two services.
    PricingTimeout,
}

impl Exception {
    pub const ALL: [Self; 5] = [
        Self::NoSettlementAccount,
        Self::DuplicatePayment,
        Self::UnreadableCart,
        Self::MailRejected,
        Self::PricingTimeout,
    ];

    fn cause_type(self) -> &'static str {
        match self {
            Self::NoSettlementAccount => "java.lang.IllegalStateException",
            Self::DuplicatePayment => "org.springframework.dao.DataIntegrityViolationException",
            Self::UnreadableCart => "org.springframework.amqp.support.converter.MessageConversionException",
            Self::MailRejected => "org.springframework.mail.MailSendException",
            Self::PricingTimeout => "java.net.SocketTimeoutException",
        }
    }

    /// The cause's message for the message with business key `key`.
    pub fn message(self, key: &str) -> String {
        match self {
            Self::NoSettlementAccount => format!("Trade {key} has no settlement account for currency CHF"),
            Self::DuplicatePayment => format!(
                "could not execute statement; SQL [n/a]; constraint [payments_idempotency_key_uq]; payment {key}"
            ),
            Self::UnreadableCart => format!("Failed to convert cart {key}: Unrecognized field \"couponCode\""),
            Self::MailRejected => format!("Mail server connection failed; 550 5.1.1 recipient of {key} rejected"),
            Self::PricingTimeout => "Read timed out calling pricing-service /v2/quotes".into(),
        }
    }

    /// Application frames, innermost first; the listener frames follow.
    fn frames(self, service: &str) -> Vec<String> {
        let own = |f: &str| format!("com.example.{}.{f}", service.replace('-', "."));
        match self {
            Self::NoSettlementAccount => vec![
                own("settlement.SettlementRouter.accountFor(SettlementRouter.java:57)"),
                own("TradeService.settle(TradeService.java:112)"),
                own("TradeListener.onTrade(TradeListener.java:29)"),
            ],
            Self::DuplicatePayment => vec![
                "org.hibernate.exception.ConstraintViolationException.<init>(ConstraintViolationException.java:59)"
                    .into(),
                own("PaymentRepository.save(PaymentRepository.java:44)"),
                own("PaymentService.capture(PaymentService.java:73)"),
                own("PaymentListener.onPayment(PaymentListener.java:25)"),
            ],
            Self::UnreadableCart => vec![
                "com.fasterxml.jackson.databind.DeserializationContext.handleUnknownProperty(DeserializationContext.java:1138)".into(),
                own("CartListener.onCheckout(CartListener.java:34)"),
            ],
            Self::MailRejected => vec![
                own("mail.MailGateway.send(MailGateway.java:61)"),
                own("NotificationService.notify(NotificationService.java:48)"),
                own("NotificationListener.onNotification(NotificationListener.java:22)"),
            ],
            Self::PricingTimeout => vec![
                "java.base/java.net.SocketInputStream.read(SocketInputStream.java:186)".into(),
                "com.example.common.pricing.PricingClient.fetchQuote(PricingClient.java:88)".into(),
                "com.example.common.pricing.PricingClient.quote(PricingClient.java:52)".into(),
                "com.example.common.pricing.CachedPricing.quote(CachedPricing.java:31)".into(),
                own("Listener.onMessage(Listener.java:40)"),
            ],
        }
    }

    /// The stack trace Spring's recoverer puts in `x-exception-stacktrace`:
    /// the listener's wrapper, then the cause with its frames.
    pub fn stack_trace(self, service: &str, key: &str) -> String {
        let mut t = format!(
            "org.springframework.amqp.rabbit.support.ListenerExecutionFailedException: Listener method \
             'public void com.example.{pkg}.Listener.onMessage(org.springframework.amqp.core.Message)' \
             threw exception\n\
             \tat org.springframework.amqp.rabbit.listener.adapter.MessagingMessageListenerAdapter.invokeHandler(MessagingMessageListenerAdapter.java:270)\n\
             \tat org.springframework.amqp.rabbit.listener.AbstractMessageListenerContainer.doInvokeListener(AbstractMessageListenerContainer.java:1569)\n\
             Caused by: {}: {}\n",
            self.cause_type(),
            self.message(key),
            pkg = service.replace('-', "."),
        );
        let listener = [
            "org.springframework.amqp.rabbit.listener.AbstractMessageListenerContainer.actualInvokeListener(AbstractMessageListenerContainer.java:1488)",
            "org.springframework.amqp.rabbit.listener.SimpleMessageListenerContainer.doReceiveAndExecute(SimpleMessageListenerContainer.java:1037)",
            "org.springframework.amqp.rabbit.listener.SimpleMessageListenerContainer$AsyncMessageProcessingConsumer.run(SimpleMessageListenerContainer.java:1392)",
            "java.base/java.lang.Thread.run(Thread.java:833)",
        ];
        for frame in self.frames(service).iter().map(String::as_str).chain(listener) {
            t.push_str("\tat ");
            t.push_str(frame);
            t.push('\n');
        }
        t
    }
}

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.as_bytes().to_vec()))
}

/// Where a failed message was first published, as the recoverer records it.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    pub exchange: &'a str,
    pub routing_key: &'a str,
}

/// The properties a `RepublishMessageRecoverer` sends a failed message on
/// with: the original properties, plus the exception and origin headers.
pub fn recovered(
    original: &BasicProperties,
    exception: Exception,
    service: &str,
    key: &str,
    origin: Origin<'_>,
) -> BasicProperties {
    let mut headers = original.headers().clone().unwrap_or_default();
    let mut put = |name: &str, value: &str| {
        headers.insert(ShortString::from(name), text(value));
    };
    put("x-exception-message", &exception.message(key));
    put("x-exception-stacktrace", &exception.stack_trace(service, key));
    put("x-original-exchange", origin.exchange);
    put("x-original-routingKey", origin.routing_key);
    original.clone().with_headers(headers).with_delivery_mode(2)
}

/// Properties of a message a demo service publishes: JSON, persistent,
/// with a message id and the publishing application's name.
pub fn published(app: &str, message_id: String) -> BasicProperties {
    BasicProperties::default()
        .with_content_type(ShortString::from("application/json"))
        .with_message_id(ShortString::from(message_id))
        .with_app_id(ShortString::from(app))
        .with_delivery_mode(2)
        .with_headers(FieldTable::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fingerprint::exception_type_from_trace;

    #[test]
    fn every_trace_names_its_cause_and_the_shared_one_groups_across_services() {
        for e in Exception::ALL {
            let trace = e.stack_trace("trade-service", "T-1");
            assert_eq!(exception_type_from_trace(&trace).as_deref(), Some(e.cause_type()));
        }
        // The top application frames are the shared client's, in both services.
        let trade = Exception::PricingTimeout.stack_trace("trade-service", "a");
        let pay = Exception::PricingTimeout.stack_trace("pay-service", "b");
        let top = |t: &str| t.lines().filter(|l| l.contains("common.pricing")).count();
        assert_eq!((top(&trade), top(&pay)), (3, 3));
    }
}
