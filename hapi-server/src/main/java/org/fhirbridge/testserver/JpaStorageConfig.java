package org.fhirbridge.testserver;

import ca.uhn.fhir.batch2.maintenance.JobMaintenanceServiceImpl;
import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.jpa.api.config.JpaStorageSettings;
import ca.uhn.fhir.jpa.config.util.HapiEntityManagerFactoryUtil;
import ca.uhn.fhir.jpa.model.config.PartitionSettings;
import ca.uhn.fhir.jpa.model.config.SubscriptionSettings;
import ca.uhn.fhir.jpa.model.dialect.HapiFhirH2Dialect;
import ca.uhn.fhir.jpa.model.dialect.HapiFhirPostgresDialect;
import ca.uhn.fhir.jpa.subscription.match.deliver.email.IEmailSender;
import ca.uhn.fhir.jpa.util.LoggingEmailSender;
import jakarta.persistence.EntityManagerFactory;
import java.util.HashMap;
import java.util.Map;
import javax.sql.DataSource;
import org.hl7.fhir.dstu2.model.Subscription.SubscriptionChannelType;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.beans.factory.config.BeanPostProcessor;
import org.springframework.beans.factory.config.ConfigurableListableBeanFactory;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.context.annotation.Primary;
import org.springframework.core.env.Environment;
import org.springframework.orm.jpa.JpaTransactionManager;
import org.springframework.orm.jpa.LocalContainerEntityManagerFactoryBean;
import org.springframework.transaction.annotation.EnableTransactionManagement;

/**
 * Storage side of the server: HAPI's JPA settings, subscription and partition settings, and the
 * Hibernate entity manager on the database that Spring Boot builds from {@code spring.datasource.*}:
 * in-memory H2 by default, PostgreSQL when the URL is {@code jdbc:postgresql:...}
 * ({@code scripts/hapi-server} with {@code HAPI_POSTGRES_DB} or {@code HAPI_DATABASE_URL}).
 */
@Configuration
@EnableTransactionManagement
public class JpaStorageConfig {

	private static final Logger LOG = LoggerFactory.getLogger(JpaStorageConfig.class);

	@Bean
	public JpaStorageSettings jpaStorageSettings(Environment env) {
		JpaStorageSettings s = new JpaStorageSettings();

		// PUT Patient/abc-1 (client-assigned alphanumeric ids) must work; purely numeric client ids
		// are allowed too. Server-assigned ids are then UUIDs so they can never collide with them.
		// fhirbridge.hapi.client-id-strategy=NOT_ALLOWED makes a server that refuses client ids
		// (the push tests' fallback to conditional update).
		s.setResourceClientIdStrategy(JpaStorageSettings.ClientIdStrategyEnum.valueOf(
				env.getProperty("fhirbridge.hapi.client-id-strategy", "ANY")));
		s.setResourceServerIdStrategy(JpaStorageSettings.IdStrategyEnum.UUID);

		s.setAllowExternalReferences(true);
		s.setAllowMultipleDelete(true);

		// $expunge (incl. expungeEverything=true, used by tests to reset the server) and
		// DELETE ...&_expunge=true / $delete-expunge
		s.setExpungeEnabled(true);
		s.setDeleteExpungeEnabled(true);

		// A search right after a write must see the write: never reuse cached search results.
		s.setReuseCachedSearchResultsForMillis(null);

		// Keep schedulers on: subscription matching retries and batch2 jobs rely on them.
		s.setSchedulingDisabled(false);

		// Batch2 jobs (e.g. DELETE ...&_expunge=true) move on to their next step as soon as a step
		// that produced a single chunk is done, instead of waiting for the next maintenance pass.
		s.setJobFastTrackingEnabled(true);

		// No Lucene/Elasticsearch.
		s.setHibernateSearchIndexSearchParams(false);
		s.setHibernateSearchIndexFullText(false);
		return s;
	}

	/**
	 * HAPI runs its batch2 maintenance pass (which starts queued jobs and advances gated steps) once a
	 * minute; a DELETE with {@code _expunge=true} would then take minutes. Run it every couple of
	 * seconds instead ({@code fhirbridge.hapi.batch-maintenance-interval-ms}); on a small test
	 * database a pass costs a few queries.
	 */
	@Bean
	public static BeanPostProcessor batch2MaintenanceInterval(Environment env) {
		long intervalMs = env.getProperty("fhirbridge.hapi.batch-maintenance-interval-ms", Long.class, 2000L);
		return new BeanPostProcessor() {
			@Override
			public Object postProcessAfterInitialization(Object bean, String beanName) {
				if (bean instanceof JobMaintenanceServiceImpl maintenance) {
					maintenance.setScheduledJobFrequencyMillis(intervalMs);
					LOG.info("Batch2 maintenance pass every {} ms", intervalMs);
				}
				return bean;
			}
		};
	}

	@Bean
	public SubscriptionSettings subscriptionSettings(TestServerProperties props) {
		SubscriptionSettings s = new SubscriptionSettings();
		s.addSupportedSubscriptionType(SubscriptionChannelType.RESTHOOK);
		// Activate new/changed Subscription resources right away instead of on the next sync.
		s.setSubscriptionChangeQueuedImmediately(true);
		s.setSubscriptionIntervalInMs(props.getSubscriptionPollIntervalMs());
		return s;
	}

	@Bean
	public PartitionSettings partitionSettings() {
		return new PartitionSettings(); // partitioning off
	}

	@Bean
	public IEmailSender emailSender() {
		return new LoggingEmailSender(); // email subscriptions are not enabled; never sends mail
	}

	@Bean
	@Primary
	public LocalContainerEntityManagerFactoryBean entityManagerFactory(
			ConfigurableListableBeanFactory beanFactory,
			FhirContext fhirContext,
			JpaStorageSettings storageSettings,
			DataSource dataSource,
			Environment env) {
		LocalContainerEntityManagerFactoryBean emf =
				HapiEntityManagerFactoryUtil.newEntityManagerFactory(beanFactory, fhirContext, storageSettings);
		emf.setPersistenceUnitName("HAPI_PU");
		emf.setDataSource(dataSource);

		String url = env.getProperty("spring.datasource.url", "");
		Class<?> dialect = url.startsWith("jdbc:postgresql:") ? HapiFhirPostgresDialect.class : HapiFhirH2Dialect.class;
		Map<String, Object> p = new HashMap<>();
		p.put("hibernate.dialect", dialect.getName());
		// creates the schema in a fresh database, adds what is missing in a kept one (H2 file, PostgreSQL)
		p.put("hibernate.hbm2ddl.auto", "update");
		p.put("hibernate.search.enabled", "false");
		p.put("hibernate.archive.scanner", "org.hibernate.boot.archive.scan.internal.DisabledScanner");
		p.put("hibernate.show_sql", "false");
		p.put("hibernate.format_sql", "false");
		p.put("hibernate.jdbc.batch_size", "20");
		p.put("hibernate.cache.use_query_cache", "false");
		p.put("hibernate.cache.use_second_level_cache", "false");
		p.put("hibernate.cache.use_structured_entries", "false");
		p.put("hibernate.cache.use_minimal_puts", "false");
		emf.setJpaPropertyMap(p);
		LOG.info("HAPI persistence unit on {} (dialect {})", url.replaceFirst("[?;].*$", ""), dialect.getSimpleName());
		return emf;
	}

	@Bean
	@Primary
	public JpaTransactionManager transactionManager(EntityManagerFactory entityManagerFactory) {
		JpaTransactionManager tm = new JpaTransactionManager();
		tm.setEntityManagerFactory(entityManagerFactory);
		return tm;
	}
}
