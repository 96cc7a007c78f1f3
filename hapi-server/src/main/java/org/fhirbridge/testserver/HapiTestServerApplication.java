package org.fhirbridge.testserver;

import ca.uhn.fhir.batch2.jobs.config.Batch2JobsConfig;
import ca.uhn.fhir.jpa.api.config.ThreadPoolFactoryConfig;
import ca.uhn.fhir.jpa.batch2.JpaBatch2Config;
import ca.uhn.fhir.jpa.config.HapiJpaConfig;
import ca.uhn.fhir.jpa.config.r4.JpaR4Config;
import ca.uhn.fhir.jpa.subscription.channel.config.SubscriptionChannelConfig;
import ca.uhn.fhir.jpa.subscription.match.config.SubscriptionProcessorConfig;
import ca.uhn.fhir.jpa.subscription.submit.config.SubscriptionSubmitterConfig;
import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.boot.context.properties.EnableConfigurationProperties;
import org.springframework.context.annotation.Import;

/**
 * Entry point of the fhir-bridge HAPI FHIR JPA (R4) test server.
 *
 * <p>HAPI's own Spring configurations are imported explicitly; Spring Boot only supplies the embedded
 * Tomcat, the H2 {@code DataSource} (from {@code spring.datasource.*}) and property binding. Boot
 * auto-configurations that would fight HAPI (its own JPA/Hibernate setup, Flyway, Quartz,
 * Elasticsearch client, Thymeleaf) are excluded by name so that nothing is started that the tests
 * do not need.
 */
@SpringBootApplication(
		excludeName = {
			"org.springframework.boot.autoconfigure.orm.jpa.HibernateJpaAutoConfiguration",
			"org.springframework.boot.autoconfigure.data.jpa.JpaRepositoriesAutoConfiguration",
			"org.springframework.boot.autoconfigure.flyway.FlywayAutoConfiguration",
			"org.springframework.boot.autoconfigure.quartz.QuartzAutoConfiguration",
			"org.springframework.boot.autoconfigure.elasticsearch.ElasticsearchClientAutoConfiguration",
			"org.springframework.boot.autoconfigure.elasticsearch.ElasticsearchRestClientAutoConfiguration",
			"org.springframework.boot.autoconfigure.thymeleaf.ThymeleafAutoConfiguration",
			"org.springframework.boot.autoconfigure.websocket.servlet.WebSocketServletAutoConfiguration",
		})
@EnableConfigurationProperties(TestServerProperties.class)
@Import({
	// JPA server for FHIR R4 (DAOs, resource providers, search, terminology, validation support)
	JpaR4Config.class,
	// full-text search service stubs, stale search cleanup, paging provider, resource counts
	HapiJpaConfig.class,
	ThreadPoolFactoryConfig.class,
	// batch2 job framework + the standard jobs ($delete-expunge, $reindex, bulk export, ...)
	JpaBatch2Config.class,
	Batch2JobsConfig.class,
	// subscriptions: matching on write, in-memory channels, rest-hook delivery
	SubscriptionSubmitterConfig.class,
	SubscriptionProcessorConfig.class,
	SubscriptionChannelConfig.class,
	// this server's own beans
	JpaStorageConfig.class,
	RestfulServerConfig.class,
	ValidationPackagesConfig.class
})
public class HapiTestServerApplication {

	public static void main(String[] args) {
		SpringApplication.run(HapiTestServerApplication.class, args);
	}
}
